# The Kubeflow Trainer v2 TrainingRuntime with GPU placement (deploy/k8s/base/training).
module "slice" {
  source       = "../kustomize-slice"
  overlay_path = var.overlay_path
  module_label = "training"
}
