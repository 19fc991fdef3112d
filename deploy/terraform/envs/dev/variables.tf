variable "kubeconfig_path" {
  description = "kubeconfig file with the target cluster."
  type        = string
  default     = "~/.kube/config"
}

variable "kube_context" {
  description = "kubeconfig context of the target cluster (explicit, so a plan never hits the wrong one)."
  type        = string
  validation {
    condition     = length(trimspace(var.kube_context)) > 0
    error_message = "kube_context must name a context in the kubeconfig."
  }
}

variable "acme_email" {
  description = "Contact address for Let's Encrypt certificates."
  type        = string
  validation {
    condition     = can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.acme_email))
    error_message = "acme_email must be an e-mail address."
  }
}

variable "platform_image_tag" {
  description = "Tag of the platform image to run (deploy/docker/Dockerfile)."
  type        = string
  default     = "0.1.0"
  validation {
    condition     = var.platform_image_tag != "latest"
    error_message = "Use an immutable tag, not latest."
  }
}

variable "domain" {
  description = "DNS zone of the public hosts (dagster., mlflow., api.); must match the overlay's Ingress hosts."
  type        = string
  default     = "llama-platform.example.com"
  validation {
    condition     = can(regex("^([a-z0-9-]+\\.)+[a-z]{2,}$", var.domain))
    error_message = "domain must be a DNS name like llama-platform.example.com."
  }
}
