# Public entry: oauth2-proxy, cert-manager Certificates and the Ingresses (deploy/k8s/base/ingress).
module "slice" {
  source       = "../kustomize-slice"
  overlay_path = var.overlay_path
  module_label = "ingress"
}
