variable "overlay_path" {
  description = "Path of the kustomize overlay to build (deploy/k8s/overlays/<env>)."
  type        = string
  validation {
    condition     = can(regex("deploy/k8s/overlays/[a-z0-9-]+/?$", var.overlay_path))
    error_message = "overlay_path must point at deploy/k8s/overlays/<env>."
  }
}

variable "module_label" {
  description = "Apply the objects whose label llama-platform/module has this value."
  type        = string
  validation {
    condition     = contains(["namespaces", "postgres", "minio", "mlflow", "feast", "ingress", "serving", "training", "monitoring"], var.module_label)
    error_message = "module_label must be one of the base's slices (deploy/k8s/base/*/kustomization.yaml)."
  }
}
