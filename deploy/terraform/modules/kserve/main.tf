# Serving: KServe in RawDeployment mode (plain Deployments behind ingress-nginx, no Knative/Istio)
# and Seldon Core 2 (operator cluster-wide, its runtime in `serving`), then the platform's
# ServingRuntime and Seldon Server (deploy/k8s/base/serving).
resource "helm_release" "kserve_crd" {
  name             = "kserve-crd"
  repository       = "oci://ghcr.io/kserve/charts"
  chart            = "kserve-crd"
  version          = var.kserve_version
  namespace        = "kserve"
  create_namespace = true
}

resource "helm_release" "kserve" {
  name       = "kserve"
  repository = "oci://ghcr.io/kserve/charts"
  chart      = "kserve"
  version    = var.kserve_version
  namespace  = "kserve"
  wait       = true

  values = [yamlencode({
    kserve = {
      controller = {
        deploymentMode = "RawDeployment"
        gateway        = { ingressGateway = { className = "nginx" } }
      }
    }
  })]
  depends_on = [helm_release.kserve_crd]
}

resource "helm_release" "seldon_crds" {
  name             = "seldon-core-v2-crds"
  repository       = "https://seldonio.github.io/helm-charts"
  chart            = "seldon-core-v2-crds"
  version          = var.seldon_version
  namespace        = "seldon-system"
  create_namespace = true
}

resource "helm_release" "seldon_setup" {
  name       = "seldon-core-v2-setup"
  repository = "https://seldonio.github.io/helm-charts"
  chart      = "seldon-core-v2-setup"
  version    = var.seldon_version
  namespace  = "seldon-system"
  wait       = true

  set {
    name  = "controller.clusterwide"
    value = "true"
  }
  depends_on = [helm_release.seldon_crds]
}

resource "helm_release" "seldon_runtime" {
  name       = "seldon-core-v2-runtime"
  repository = "https://seldonio.github.io/helm-charts"
  chart      = "seldon-core-v2-runtime"
  version    = var.seldon_version
  namespace  = "serving"
  wait       = true
  depends_on = [helm_release.seldon_setup]
}

module "slice" {
  source       = "../kustomize-slice"
  overlay_path = var.overlay_path
  module_label = "serving"
  depends_on   = [helm_release.kserve, helm_release.seldon_runtime]
}
