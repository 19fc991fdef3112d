output "host" {
  description = "In-cluster name of Postgres (both environments)."
  value       = "postgres.data.svc.cluster.local"
}

output "object_ids" {
  description = "Kustomize ids of the objects applied."
  value       = module.slice.ids
}
