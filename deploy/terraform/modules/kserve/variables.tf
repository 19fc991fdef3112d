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

variable "values_file" {
  description = "Values of the kserve chart (deploy/helm/kserve-values.yaml)."
  type        = string
  validation {
    condition     = endswith(var.values_file, ".yaml")
    error_message = "values_file must be a .yaml file."
  }
}

variable "deployment_mode" {
  description = "KServe's default deploy mode (inferenceservice-config), which values_file must set. Serverless: the canary (canaryTrafficPercent) needs Knative revisions."
  type        = string
  default     = "Serverless"
  validation {
    condition     = var.deployment_mode == "Serverless"
    error_message = "deployment_mode must be Serverless: llama_platform/k8s/serving.py's canary rollout splits traffic between Knative revisions, which RawDeployment does not make."
  }
}

variable "knative_operator_version" {
  description = "Knative Operator release (its Helm chart from the GitHub release); the same minor as spec.version of deploy/k8s/knative/knative-serving.yaml, which KServe's kserve-deps.env pins (1.21.1)."
  type        = string
  default     = "v1.21.1"
  validation {
    condition     = can(regex("^v1\\.[0-9]+\\.[0-9]+$", var.knative_operator_version))
    error_message = "knative_operator_version must look like v1.21.1."
  }
}

variable "knative_path" {
  description = "Path of the kustomization with the knative-serving Namespace and the KnativeServing object (deploy/k8s/knative)."
  type        = string
  validation {
    condition     = can(regex("deploy/k8s/knative/?$", var.knative_path))
    error_message = "knative_path must point at deploy/k8s/knative."
  }
}

variable "kubeconfig_path" {
  description = "kubeconfig file of the cluster (the same as the providers'), used to wait for Knative Serving to be Ready."
  type        = string
  validation {
    condition     = length(var.kubeconfig_path) > 0
    error_message = "kubeconfig_path must name a kubeconfig file."
  }
}

variable "kube_context" {
  description = "kubectl context of the cluster (the same as the providers'), used to wait for Knative Serving to be Ready."
  type        = string
  validation {
    condition     = length(var.kube_context) > 0
    error_message = "kube_context must name a kubectl context."
  }
}

variable "knative_ready_timeout" {
  description = "How long to wait for the KnativeServing object to become Ready (kubectl wait --timeout)."
  type        = string
  default     = "600s"
  validation {
    condition     = can(regex("^[0-9]+[sm]$", var.knative_ready_timeout))
    error_message = "knative_ready_timeout must look like 600s or 10m."
  }
}
