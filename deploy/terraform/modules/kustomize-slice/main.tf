# One slice of a kustomize overlay: the objects labelled llama-platform/module = var.module_label.
# The manifests stay the single source of truth (deploy/k8s); Terraform orders and tracks them.
# Applied in kustomize's priority groups: namespaces and CRDs, then the rest, then webhooks.
data "kustomization_build" "overlay" {
  path = var.overlay_path
}

locals {
  selected = {
    for id, manifest in data.kustomization_build.overlay.manifests : id => manifest
    if try(jsondecode(manifest).metadata.labels["llama-platform/module"], "") == var.module_label
  }
  p0 = [for id in data.kustomization_build.overlay.ids_prio[0] : id if contains(keys(local.selected), id)]
  p1 = [for id in data.kustomization_build.overlay.ids_prio[1] : id if contains(keys(local.selected), id)]
  p2 = [for id in data.kustomization_build.overlay.ids_prio[2] : id if contains(keys(local.selected), id)]
}

resource "kustomization_resource" "p0" {
  for_each = toset(local.p0)
  manifest = local.selected[each.value]
}

resource "kustomization_resource" "p1" {
  for_each   = toset(local.p1)
  manifest   = local.selected[each.value]
  depends_on = [kustomization_resource.p0]
}

resource "kustomization_resource" "p2" {
  for_each   = toset(local.p2)
  manifest   = local.selected[each.value]
  depends_on = [kustomization_resource.p1]
}
