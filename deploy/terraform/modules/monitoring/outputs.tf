output "prometheus_service" {
  description = "In-cluster Prometheus endpoint."
  value       = "kube-prometheus-stack-prometheus.monitoring.svc.cluster.local:9090"
}
