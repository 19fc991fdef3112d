variable "overlay_path" {
  description = "Path of the kustomize overlay (deploy/k8s/overlays/<env>)."
  type        = string
}

variable "kserve_version" {
  description = "KServe release (charts kserve-crd and kserve); keep it equal to the kserve pin in pyproject.toml."
  type        = string
  default     = "v0.21.0"
  validation {
    condition     = can(regex("^v[0-9]+\\.[0-9]+\\.[0-9]+$", var.kserve_version))
    error_message = "kserve_version must look like v0.21.0."
  }
}

variable "seldon_version" {
  description = "Seldon Core 2 release (charts seldon-core-v2-crds, -setup, -runtime)."
  type        = string
  default     = "2.9.0"
  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.seldon_version))
    error_message = "seldon_version must look like 2.9.0."
  }
}
