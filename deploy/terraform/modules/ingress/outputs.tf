output "hosts" {
  description = "Public hosts served."
  value       = ["dagster", "mlflow", "api"]
}

output "object_ids" {
  description = "Kustomize ids of the objects applied."
  value       = module.slice.ids
}
