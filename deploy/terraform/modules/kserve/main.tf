# Serving: KServe in Serverless mode on Knative Serving with Kourier (the InferenceService canary,
# canaryTrafficPercent, is a Knative revision traffic split; RawDeployment would ignore it), and
# Seldon Core 2 (operator cluster-wide, its runtime in `serving`), then the platform's
# ServingRuntime and Seldon Server (deploy/k8s/base/serving). cert-manager (module addons) must be
# there first: KServe's webhook certificates come from it.
#
# Knative is installed as KServe's own setup does it (hack/setup/infra/knative): the Knative
# Operator's chart from its GitHub release, then the KnativeServing object of deploy/k8s/knative
# (one source for Terraform and the by-hand steps in deploy/README.md).
resource "helm_release" "knative_operator" {
  name             = "knative-operator"
  chart            = "https://github.com/knative/operator/releases/download/knative-${var.knative_operator_version}/knative-operator-${var.knative_operator_version}.tgz"
  namespace        = "knative-operator"
  create_namespace = true
  wait             = true
}

data "kustomization_build" "knative" {
  path = var.knative_path
}

# The knative-serving Namespace first, then the KnativeServing object (its CRD comes with the
# operator's chart).
resource "kustomization_resource" "knative_p0" {
  for_each   = toset(data.kustomization_build.knative.ids_prio[0])
  manifest   = data.kustomization_build.knative.manifests[each.value]
  depends_on = [helm_release.knative_operator]
}

resource "kustomization_resource" "knative_p1" {
  for_each   = toset(data.kustomization_build.knative.ids_prio[1])
  manifest   = data.kustomization_build.knative.manifests[each.value]
  depends_on = [kustomization_resource.knative_p0]
}

# The operator reconciles Knative Serving and Kourier from the KnativeServing object: wait for it
# to report Ready before KServe (whose Serverless mode needs Knative's CRDs and webhooks).
resource "terraform_data" "knative_ready" {
  triggers_replace = [for id in data.kustomization_build.knative.ids_prio[1] : kustomization_resource.knative_p1[id].id]
  provisioner "local-exec" {
    command = "kubectl --kubeconfig '${var.kubeconfig_path}' --context '${var.kube_context}' -n knative-serving wait knativeserving/knative-serving --for=condition=Ready --timeout=${var.knative_ready_timeout}"
  }
}

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

  # deploy/helm/kserve-values.yaml: Serverless as inferenceservice-config's default deploy mode
  # (the InferenceServices the code builds also ask for it by annotation), no Istio VirtualServices
  # (Kourier), a restricted storage-initializer with requests and limits.
  values = [file(var.values_file)]

  lifecycle {
    precondition {
      condition     = yamldecode(file(var.values_file)).kserve.controller.deploymentMode == var.deployment_mode
      error_message = "kserve.controller.deploymentMode in ${var.values_file} must be ${var.deployment_mode}: the canary needs Knative revisions."
    }
  }
  depends_on = [helm_release.kserve_crd, terraform_data.knative_ready]
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
