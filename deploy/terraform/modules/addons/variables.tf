variable "acme_email" {
  description = "Contact address for Let's Encrypt (the ClusterIssuer `letsencrypt`)."
  type        = string
  validation {
    condition     = can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.acme_email))
    error_message = "acme_email must be an e-mail address."
  }
}

variable "acme_server" {
  description = "ACME directory: Let's Encrypt production or staging."
  type        = string
  default     = "https://acme-v02.api.letsencrypt.org/directory"
  validation {
    condition     = startswith(var.acme_server, "https://")
    error_message = "acme_server must be an https URL."
  }
}

variable "chart_versions" {
  description = "Pinned chart versions of the cluster add-ons the platform relies on."
  type = object({
    cert_manager     = string
    external_secrets = string
    ingress_nginx    = string
    kubeflow_trainer = string
  })
  default = {
    cert_manager     = "v1.17.2"
    external_secrets = "0.18.2"
    ingress_nginx    = "4.12.3"
    kubeflow_trainer = "2.3.0"
  }
}

variable "ingress_replicas" {
  description = "ingress-nginx controller replicas (2+ for HA)."
  type        = number
  default     = 1
  validation {
    condition     = var.ingress_replicas >= 1 && var.ingress_replicas <= 10
    error_message = "ingress_replicas must be between 1 and 10."
  }
}
