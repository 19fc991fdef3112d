# Feast: Redis online store and the feature server (deploy/k8s/base/feast).
module "slice" {
  source       = "../kustomize-slice"
  overlay_path = var.overlay_path
  module_label = "feast"
}
