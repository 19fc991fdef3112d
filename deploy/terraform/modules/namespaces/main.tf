# The trust zones: namespaces (Pod Security restricted), ServiceAccounts, RBAC, NetworkPolicies, SecretStores + ExternalSecrets and the settings ConfigMaps (deploy/k8s/base/namespaces).
module "slice" {
  source       = "../kustomize-slice"
  overlay_path = var.overlay_path
  module_label = "namespaces"
}
