variable "overlay_path" {
  description = "Path of the kustomize overlay (deploy/k8s/overlays/<env>)."
  type        = string
}
