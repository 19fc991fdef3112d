output "runtime" {
  description = "TrainingRuntime name TrainJobs reference."
  value       = "llama-platform-torch"
}

output "object_ids" {
  description = "Kustomize ids of the objects applied."
  value       = module.slice.ids
}
