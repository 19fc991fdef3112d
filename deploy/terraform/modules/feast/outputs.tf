output "feature_server_url" {
  description = "Feast feature server URL inside the cluster."
  value       = "http://feast.data.svc.cluster.local:6566"
}

output "object_ids" {
  description = "Kustomize ids of the objects applied."
  value       = module.slice.ids
}
