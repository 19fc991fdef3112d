output "cluster_issuer" {
  description = "The ClusterIssuer the platform's Certificates reference."
  value       = "letsencrypt"
}

output "ingress_class" {
  description = "IngressClass of the controller."
  value       = "nginx"
}
