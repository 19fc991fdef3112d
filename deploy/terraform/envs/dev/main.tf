# dev: one small cluster. Order: add-ons (CRDs, controllers) -> namespaces, accounts, RBAC,
# network policies, secrets -> data services -> Dagster -> serving and training -> public entry
# -> monitoring. Objects come from deploy/k8s/overlays/dev; Dagster from deploy/helm.
locals {
  overlay = abspath("${path.module}/../../../k8s/overlays/dev")
  helm    = abspath("${path.module}/../../../helm")
}

module "addons" {
  source           = "../../modules/addons"
  acme_email       = var.acme_email
  acme_server      = "https://acme-staging-v02.api.letsencrypt.org/directory"
  ingress_replicas = 1
}

module "namespaces" {
  source       = "../../modules/namespaces"
  overlay_path = local.overlay
  depends_on   = [module.addons]
}

module "postgres" {
  source       = "../../modules/postgres"
  overlay_path = local.overlay
  depends_on   = [module.namespaces]
}

module "minio" {
  source       = "../../modules/minio"
  overlay_path = local.overlay
  depends_on   = [module.namespaces]
}

module "mlflow" {
  source       = "../../modules/mlflow"
  overlay_path = local.overlay
  depends_on   = [module.postgres, module.minio]
}

module "feast" {
  source       = "../../modules/feast"
  overlay_path = local.overlay
  depends_on   = [module.minio]
}

module "dagster" {
  source             = "../../modules/dagster"
  values_files       = ["${local.helm}/dagster-values.yaml"]
  platform_image_tag = var.platform_image_tag
  depends_on         = [module.postgres, module.minio]
}

module "kserve" {
  source       = "../../modules/kserve"
  overlay_path = local.overlay
  depends_on   = [module.namespaces]
}

module "training" {
  source       = "../../modules/training"
  overlay_path = local.overlay
  depends_on   = [module.namespaces]
}

module "ingress" {
  source       = "../../modules/ingress"
  overlay_path = local.overlay
  depends_on   = [module.dagster, module.mlflow]
}

module "monitoring" {
  source       = "../../modules/monitoring"
  overlay_path = local.overlay
  values_file  = "${local.helm}/kube-prometheus-stack-values.yaml"
  retention    = "7d"
  depends_on   = [module.namespaces]
}
