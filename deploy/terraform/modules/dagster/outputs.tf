output "release" {
  description = "Helm release name."
  value       = helm_release.dagster.name
}

output "webserver_service" {
  description = "In-cluster Service of the Dagster UI (behind oauth2-proxy on the Ingress)."
  value       = "dagster-dagster-webserver.dagster.svc.cluster.local:8080"
}
