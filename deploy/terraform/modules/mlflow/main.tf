# The MLflow tracking server and registry (deploy/k8s/base/mlflow): Postgres backend, artifacts on MinIO.
module "slice" {
  source       = "../kustomize-slice"
  overlay_path = var.overlay_path
  module_label = "mlflow"
}
