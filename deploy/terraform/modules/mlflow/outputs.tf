output "tracking_uri" {
  description = "MLflow tracking URI inside the cluster."
  value       = "http://mlflow.data.svc.cluster.local:5000"
}

output "object_ids" {
  description = "Kustomize ids of the objects applied."
  value       = module.slice.ids
}
