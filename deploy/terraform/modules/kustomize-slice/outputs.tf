output "ids" {
  description = "Kustomize ids of the objects this slice applied."
  value       = sort(keys(local.selected))
}
