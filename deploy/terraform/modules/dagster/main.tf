# Dagster from its official Helm chart: webserver, daemon, the platform's user-code deployment,
# the K8sRunLauncher (run pods as dagster-run) and external Postgres (deploy/helm/*.yaml).
# The namespace, accounts, Roles and Secrets come from the namespaces module, applied first.
resource "helm_release" "dagster" {
  name             = "dagster"
  repository       = "https://dagster-io.github.io/helm"
  chart            = "dagster"
  version          = var.chart_version
  namespace        = "dagster"
  create_namespace = false
  wait             = true
  timeout          = 900
  values           = [for f in var.values_files : file(f)]

  set {
    name  = "dagster-user-deployments.deployments[0].image.tag"
    value = var.platform_image_tag
  }
}
