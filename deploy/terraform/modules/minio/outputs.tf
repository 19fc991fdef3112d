output "endpoint" {
  description = "S3 endpoint inside the cluster."
  value       = "http://minio.data.svc.cluster.local:9000"
}

output "object_ids" {
  description = "Kustomize ids of the objects applied."
  value       = module.slice.ids
}
