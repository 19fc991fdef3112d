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
