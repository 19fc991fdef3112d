variable "overlay_path" {
  description = "Path of the kustomize overlay (deploy/k8s/overlays/<env>)."
  type        = string
}

variable "values_file" {
  description = "Helm values of kube-prometheus-stack (deploy/helm/kube-prometheus-stack-values.yaml)."
  type        = string
  validation {
    condition     = endswith(var.values_file, ".yaml")
    error_message = "values_file must be a .yaml file."
  }
}

variable "chart_version" {
  description = "kube-prometheus-stack chart version."
  type        = string
  default     = "75.15.1"
  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.chart_version))
    error_message = "chart_version must be a release version."
  }
}

variable "retention" {
  description = "How long Prometheus keeps metrics, e.g. 15d."
  type        = string
  default     = "15d"
  validation {
    condition     = can(regex("^[0-9]+(h|d|w)$", var.retention))
    error_message = "retention must be a number followed by h, d or w."
  }
}

variable "storage_size" {
  description = "Prometheus volume size."
  type        = string
  default     = "50Gi"
  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi|Ti)$", var.storage_size))
    error_message = "storage_size must be a quantity like 50Gi."
  }
}
