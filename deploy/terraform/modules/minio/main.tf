# MinIO with persistent volumes (deploy/k8s/base/minio): one node in dev, four-node erasure-coded in prod.
module "slice" {
  source       = "../kustomize-slice"
  overlay_path = var.overlay_path
  module_label = "minio"
}
