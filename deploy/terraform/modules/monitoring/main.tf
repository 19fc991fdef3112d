# Prometheus + Alertmanager (kube-prometheus-stack) in `monitoring`, which enforces Pod Security
# "restricted": node-exporter (hostNetwork/hostPID) is left out here; install it in a privileged
# namespace of its own if node metrics are wanted. Prometheus scrapes MinIO and MLflow (static
# configs below) and the predictors through the PodMonitors of deploy/k8s/base/monitoring (the
# `monitoring` slice, applied after the chart brings the CRDs); the network policies of deploy/k8s
# allow exactly those ports from `monitoring`.
locals {
  restricted_pod = {
    runAsNonRoot   = true
    runAsUser      = 10001
    runAsGroup     = 10001
    fsGroup        = 10001
    seccompProfile = { type = "RuntimeDefault" }
  }
  restricted_container = {
    allowPrivilegeEscalation = false
    readOnlyRootFilesystem   = true
    capabilities             = { drop = ["ALL"] }
  }
}

resource "helm_release" "kube_prometheus_stack" {
  name       = "kube-prometheus-stack"
  repository = "https://prometheus-community.github.io/helm-charts"
  chart      = "kube-prometheus-stack"
  version    = var.chart_version
  namespace  = "monitoring"
  wait       = true
  timeout    = 900

  values = [yamlencode({
    nodeExporter = { enabled = false }
    grafana      = { enabled = false }
    prometheusOperator = {
      securityContext = local.restricted_pod
      containerSecurityContext = merge(local.restricted_container, {
        runAsNonRoot = true, seccompProfile = { type = "RuntimeDefault" }
      })
      resources = { requests = { cpu = "100m", memory = "128Mi" }, limits = { cpu = "500m", memory = "512Mi" } }
    }
    prometheus = {
      prometheusSpec = {
        retention = var.retention
        # Only the platform's PodMonitors, only from `monitoring` (where their token Secret lives):
        # explicit, instead of the chart's default `release: <name>` label selector.
        podMonitorSelectorNilUsesHelmValues = false
        podMonitorSelector                  = { matchLabels = { "llama-platform/scrape" = "true" } }
        podMonitorNamespaceSelector         = { matchLabels = { "kubernetes.io/metadata.name" = "monitoring" } }
        securityContext                     = local.restricted_pod
        resources                           = { requests = { cpu = "500m", memory = "2Gi" }, limits = { cpu = "2", memory = "8Gi" } }
        storageSpec = {
          volumeClaimTemplate = {
            spec = { accessModes = ["ReadWriteOnce"], resources = { requests = { storage = var.storage_size } } }
          }
        }
        additionalScrapeConfigs = [
          {
            job_name       = "minio"
            metrics_path   = "/minio/v2/metrics/cluster"
            static_configs = [{ targets = ["minio.data.svc.cluster.local:9000"] }]
          },
          {
            job_name       = "mlflow"
            metrics_path   = "/metrics"
            static_configs = [{ targets = ["mlflow.data.svc.cluster.local:5000"] }]
          },
        ]
      }
    }
    alertmanager = {
      alertmanagerSpec = {
        securityContext = local.restricted_pod
        resources       = { requests = { cpu = "50m", memory = "64Mi" }, limits = { cpu = "200m", memory = "256Mi" } }
      }
    }
  })]
}

module "slice" {
  source       = "../kustomize-slice"
  overlay_path = var.overlay_path
  module_label = "monitoring"
  depends_on   = [helm_release.kube_prometheus_stack]
}
