# Cluster add-ons the manifests need: cert-manager (Certificates) with a Let's Encrypt
# ClusterIssuer, External Secrets (ExternalSecret/SecretStore), ingress-nginx (Ingress + external
# auth for oauth2-proxy) and the Kubeflow Trainer v2 controller (TrainingRuntime/TrainJob).
resource "helm_release" "cert_manager" {
  name             = "cert-manager"
  repository       = "https://charts.jetstack.io"
  chart            = "cert-manager"
  version          = var.chart_versions.cert_manager
  namespace        = "cert-manager"
  create_namespace = true
  wait             = true

  set {
    name  = "crds.enabled"
    value = "true"
  }
}

resource "kustomization_resource" "cluster_issuer" {
  manifest = jsonencode({
    apiVersion = "cert-manager.io/v1"
    kind       = "ClusterIssuer"
    metadata   = { name = "letsencrypt" }
    spec = {
      acme = {
        email               = var.acme_email
        server              = var.acme_server
        privateKeySecretRef = { name = "letsencrypt-account-key" }
        solvers             = [{ http01 = { ingress = { ingressClassName = "nginx" } } }]
      }
    }
  })
  depends_on = [helm_release.cert_manager]
}

resource "helm_release" "external_secrets" {
  name             = "external-secrets"
  repository       = "https://charts.external-secrets.io"
  chart            = "external-secrets"
  version          = var.chart_versions.external_secrets
  namespace        = "external-secrets"
  create_namespace = true
  wait             = true

  set {
    name  = "installCRDs"
    value = "true"
  }
}

resource "helm_release" "ingress_nginx" {
  name             = "ingress-nginx"
  repository       = "https://kubernetes.github.io/ingress-nginx"
  chart            = "ingress-nginx"
  version          = var.chart_versions.ingress_nginx
  namespace        = "ingress-nginx"
  create_namespace = true
  wait             = true

  values = [yamlencode({
    controller = {
      replicaCount = var.ingress_replicas
      # The UIs' auth-url/auth-signin annotations need the snippet-free external auth only.
      allowSnippetAnnotations = false
      config                  = { "ssl-redirect" = "true", "hsts" = "true" }
      metrics                 = { enabled = true }
    }
  })]
}

resource "helm_release" "kubeflow_trainer" {
  name             = "kubeflow-trainer"
  repository       = "oci://ghcr.io/kubeflow/charts"
  chart            = "kubeflow-trainer"
  version          = var.chart_versions.kubeflow_trainer
  namespace        = "kubeflow-system"
  create_namespace = true
  wait             = true
}
