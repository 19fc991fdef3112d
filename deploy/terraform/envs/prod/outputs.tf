output "dagster_ui" {
  description = "Dagster UI behind oauth2-proxy."
  value       = "https://dagster.${var.domain}"
}

output "mlflow_ui" {
  description = "MLflow UI behind oauth2-proxy."
  value       = "https://mlflow.${var.domain}"
}

output "model_endpoint" {
  description = "The model endpoint (API key or service token)."
  value       = "https://api.${var.domain}"
}

output "in_cluster" {
  description = "In-cluster addresses of the platform's services."
  value = {
    postgres   = module.postgres.host
    s3         = module.minio.endpoint
    mlflow     = module.mlflow.tracking_uri
    feast      = module.feast.feature_server_url
    dagster    = module.dagster.webserver_service
    prometheus = module.monitoring.prometheus_service
    training   = module.training.runtime
    serving    = module.kserve.serving_runtime
    issuer     = module.addons.cluster_issuer
  }
}

output "serving" {
  description = "How KServe serves: its deploy mode (Serverless, for the canary's traffic split) and the Knative Serving release under it."
  value = {
    deployment_mode         = module.kserve.deployment_mode
    knative_serving_version = module.kserve.knative_serving_version
    model_endpoint_upstream = module.kserve.model_endpoint_upstream
  }
}
