output "namespaces" {
  description = "The platform's namespaces."
  value       = ["dagster", "data", "training", "serving", "monitoring"]
}

output "object_ids" {
  description = "Kustomize ids of the objects applied."
  value       = module.slice.ids
}
