# Postgres for MLflow and Dagster: the in-cluster StatefulSet (dev) or, in prod, the ExternalName alias of the managed database and its egress policies (deploy/k8s/base/postgres, overlays/prod).
module "slice" {
  source       = "../kustomize-slice"
  overlay_path = var.overlay_path
  module_label = "postgres"
}
