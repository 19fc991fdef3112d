variable "chart_version" {
  description = "Version of the official Dagster Helm chart; keep it equal to the dagster pin in pyproject.toml."
  type        = string
  default     = "1.13.27"
  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.chart_version))
    error_message = "chart_version must be a release version like 1.13.27."
  }
}

variable "values_files" {
  description = "Helm values files, applied in order (deploy/helm/dagster-values.yaml, then the environment's)."
  type        = list(string)
  validation {
    condition     = length(var.values_files) >= 1 && alltrue([for f in var.values_files : endswith(f, ".yaml")])
    error_message = "values_files must list at least one .yaml file."
  }
}

variable "platform_image_tag" {
  description = "Tag of ghcr.io/llama-platform/platform for the user-code deployment (and so the run pods)."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.platform_image_tag)) && var.platform_image_tag != "latest"
    error_message = "platform_image_tag must be a valid, immutable image tag (not latest)."
  }
}
