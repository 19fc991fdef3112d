# Prometheus + Alertmanager (kube-prometheus-stack) in `monitoring`, with the values of
# deploy/helm/kube-prometheus-stack-values.yaml (restricted pods; the PodMonitor selectors) plus
# retention and storage here. Prometheus scrapes MinIO and MLflow (static configs in the values)
# and the predictors through the PodMonitors of deploy/k8s/base/monitoring (the `monitoring`
# slice, applied after the chart brings the CRDs); the network policies of deploy/k8s allow
# exactly those ports from `monitoring`.
resource "helm_release" "kube_prometheus_stack" {
  name       = "kube-prometheus-stack"
  repository = "https://prometheus-community.github.io/helm-charts"
  chart      = "kube-prometheus-stack"
  version    = var.chart_version
  namespace  = "monitoring"
  wait       = true
  timeout    = 900

  values = [
    file(var.values_file),
    yamlencode({
      prometheus = {
        prometheusSpec = {
          retention = var.retention
          storageSpec = {
            volumeClaimTemplate = {
              spec = { accessModes = ["ReadWriteOnce"], resources = { requests = { storage = var.storage_size } } }
            }
          }
        }
      }
    }),
  ]
}

module "slice" {
  source       = "../kustomize-slice"
  overlay_path = var.overlay_path
  module_label = "monitoring"
  depends_on   = [helm_release.kube_prometheus_stack]
}
