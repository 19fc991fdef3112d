output "serving_runtime" {
  description = "ServingRuntime InferenceServices select (model format llama-platform-triage)."
  value       = "llama-platform-predictor"
}

output "seldon_server" {
  description = "Seldon Core 2 Server the platform's Models are scheduled on."
  value       = "llama-platform-mlserver"
}

output "object_ids" {
  description = "Kustomize ids of the objects applied."
  value       = module.slice.ids
}

output "deployment_mode" {
  description = "KServe's default deploy mode (Serverless: Knative revisions, canary traffic split)."
  value       = var.deployment_mode
}

output "knative_serving_version" {
  description = "Knative Serving release the operator installs (spec.version of deploy/k8s/knative)."
  value       = yamldecode(file("${var.knative_path}/knative-serving.yaml")).spec.version
}

output "model_endpoint_upstream" {
  description = "Where the model-endpoint Ingress sends requests: Kourier's internal listener, with the predictor route's host."
  value       = "kourier-internal.knative-serving.svc.cluster.local (Host: llama4-triage-predictor.serving.svc.cluster.local)"
}
