"""Least-privilege rules over rendered objects (SECURITY.md). Each check returns its violations,
so a test can show both that the platform passes and that a bad object is caught.

Written here rather than with a policy engine (OPA/Kyverno CLIs are not installable on these
machines); checkov covers the generic rules, these the platform's own (who may do what, where).
"""

from __future__ import annotations

from collections import defaultdict

from llama_platform_tests.deploy.manifests import pod_specs, ref

RESTRICTED = "restricted"
PSA_MODES = ("enforce", "audit", "warn")
BROAD_ROLES = {"cluster-admin", "admin", "edit"}


def rbac_violations(objs: list[dict]) -> list[str]:
    out = []
    for obj in objs:
        kind = obj["kind"]
        if kind in ("ClusterRole", "ClusterRoleBinding"):
            out.append(f"{ref(obj)}: cluster-wide RBAC (only namespaced Roles are allowed)")
        if kind in ("Role", "ClusterRole"):
            for rule in obj.get("rules", []):
                for field in ("verbs", "resources", "apiGroups", "resourceNames"):
                    if "*" in rule.get(field, []):
                        out.append(f"{ref(obj)}: wildcard in {field}")
                if "secrets" in rule.get("resources", []):
                    if not rule.get("resourceNames"):
                        out.append(f"{ref(obj)}: secrets without resourceNames")
                    if set(rule.get("verbs", [])) - {"get"}:
                        out.append(f"{ref(obj)}: secrets with verbs other than get")
                if {"escalate", "bind", "impersonate"} & set(rule.get("verbs", [])):
                    out.append(f"{ref(obj)}: escalation verb")
        if kind in ("RoleBinding", "ClusterRoleBinding") and obj["roleRef"]["name"] in BROAD_ROLES:
            out.append(f"{ref(obj)}: binds {obj['roleRef']['name']}")
    return out


def grants(objs: list[dict], namespace: str, account: str) -> dict[str, set[tuple[str, str, str]]]:
    """namespace -> {(apiGroup, resource, verb)} granted to one ServiceAccount through RoleBindings."""
    roles = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objs if o["kind"] == "Role"}
    out: dict[str, set] = defaultdict(set)
    for b in (o for o in objs if o["kind"] == "RoleBinding"):
        if not any(s.get("kind") == "ServiceAccount" and s["name"] == account and s.get("namespace") == namespace
                   for s in b.get("subjects", [])):
            continue
        ns = b["metadata"]["namespace"]
        role = roles[(ns, b["roleRef"]["name"])]
        for rule in role["rules"]:
            for group in rule.get("apiGroups", []):
                for resource in rule.get("resources", []):
                    for verb in rule.get("verbs", []):
                        out[ns].add((group, resource, verb))
    return out


def namespace_violations(objs: list[dict]) -> list[str]:
    out = []
    namespaces = [o for o in objs if o["kind"] == "Namespace"]
    for ns in namespaces:
        labels = ns["metadata"].get("labels", {})
        for mode in PSA_MODES:
            if labels.get(f"pod-security.kubernetes.io/{mode}") != RESTRICTED:
                out.append(f"{ref(ns)}: pod-security {mode} is not restricted")
    default_deny = {
        o["metadata"]["namespace"] for o in objs
        if o["kind"] == "NetworkPolicy" and o["spec"].get("podSelector") == {}
        and set(o["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not o["spec"].get("ingress") and not o["spec"].get("egress")
    }
    for ns in namespaces:
        if ns["metadata"]["name"] not in default_deny:
            out.append(f"{ref(ns)}: no default-deny NetworkPolicy (ingress and egress)")
    return out


def pod_violations(where: str, pod: dict, has_pod_level: bool = True) -> list[str]:
    """Pod Security Standard "restricted" plus requests and limits on every container."""
    out = []
    psc = pod.get("securityContext", {})
    if has_pod_level:
        if psc.get("runAsNonRoot") is not True:
            out.append(f"{where}: pod runAsNonRoot is not true")
        if psc.get("runAsUser") == 0:
            out.append(f"{where}: pod runs as uid 0")
        if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            out.append(f"{where}: pod seccompProfile is not RuntimeDefault")
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            if pod.get(flag):
                out.append(f"{where}: {flag}")
    for vol in pod.get("volumes", []):
        if "hostPath" in vol:
            out.append(f"{where}: hostPath volume {vol['name']}")
    for c in pod.get("initContainers", []) + pod.get("containers", []):
        cw = f"{where}/{c['name']}"
        sc = c.get("securityContext", {})
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{cw}: allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            out.append(f"{cw}: privileged")
        if sc.get("readOnlyRootFilesystem") is not True:
            out.append(f"{cw}: root filesystem is writable")
        if sc.get("capabilities", {}).get("drop") != ["ALL"] or sc.get("capabilities", {}).get("add"):
            out.append(f"{cw}: capabilities are not exactly drop [ALL]")
        if sc.get("runAsUser") == 0:
            out.append(f"{cw}: runs as uid 0")
        if sc.get("runAsNonRoot") is not True and psc.get("runAsNonRoot") is not True:
            out.append(f"{cw}: runAsNonRoot is not true")
        if sc.get("seccompProfile", {}).get("type", psc.get("seccompProfile", {}).get("type")) != "RuntimeDefault":
            out.append(f"{cw}: seccompProfile is not RuntimeDefault")
        resources = c.get("resources", {})
        for part in ("requests", "limits"):
            for res in ("cpu", "memory"):
                if res not in resources.get(part, {}):
                    out.append(f"{cw}: no {part}.{res}")
    return out


def all_pod_violations(objs: list[dict]) -> list[str]:
    out = []
    for obj in objs:
        for where, pod, has_pod_level in pod_specs(obj):
            out += pod_violations(where, pod, has_pod_level)
    return out


def secret_violations(objs: list[dict]) -> list[str]:
    """No Secret in git; every Secret a pod reads is made by an ExternalSecret in its namespace."""
    out = [f"{ref(o)}: a Secret in the manifests (use an ExternalSecret)" for o in objs if o["kind"] == "Secret"]
    made = {(o["metadata"]["namespace"], o["spec"]["target"].get("name", o["metadata"]["name"]))
            for o in objs if o["kind"] == "ExternalSecret"}
    for obj in objs:
        ns = obj["metadata"].get("namespace")
        for where, pod, _ in pod_specs(obj):
            names = set()
            for c in pod.get("initContainers", []) + pod.get("containers", []):
                names |= {e["secretRef"]["name"] for e in c.get("envFrom", []) if "secretRef" in e}
                names |= {e["valueFrom"]["secretKeyRef"]["name"] for e in c.get("env", [])
                          if "secretKeyRef" in e.get("valueFrom", {})}
            names |= {v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v}
            out += [f"{where}: reads Secret {n!r}, which no ExternalSecret in {ns} makes"
                    for n in sorted(names) if (ns, n) not in made]
    for ing in (o for o in objs if o["kind"] == "Ingress"):
        for tls in ing["spec"].get("tls", []):
            if (ing["metadata"]["namespace"], tls["secretName"]) not in {
                (c["metadata"]["namespace"], c["spec"]["secretName"]) for c in objs if c["kind"] == "Certificate"
            }:
                out.append(f"{ref(ing)}: TLS Secret {tls['secretName']!r} has no cert-manager Certificate")
    return out


# ---------------------------------------------------------------- network policy evaluation
# A small evaluator of NetworkPolicy semantics (no CNI can run here): enough to ask "may this pod
# reach that pod on this port" of the rendered policies. Namespaces are matched by their
# `kubernetes.io/metadata.name` label only (the only namespace label the policies use).


def selects(selector: dict, labels: dict) -> bool:
    """A LabelSelector (matchLabels and matchExpressions) against a pod's or namespace's labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {"In": key in labels and labels[key] in values, "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}[op]
        if not ok:
            return False
    return True


def _peer_matches(peer: dict, policy_ns: str, ns: str, labels: dict) -> bool:
    if "ipBlock" in peer:
        return False  # pod-to-pod flows only
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": ns}):
            return False
    elif ns != policy_ns:
        return False
    return selects(peer.get("podSelector", {}), labels)


def _side_allows(objs: list[dict], direction: str, ns: str, labels: dict, peer_ns: str, peer_labels: dict,
                 port: int) -> bool:
    kind, peers = ("Ingress", "from") if direction == "ingress" else ("Egress", "to")
    policies = [o for o in objs if o["kind"] == "NetworkPolicy" and o["metadata"]["namespace"] == ns
                and kind in o["spec"].get("policyTypes", []) and selects(o["spec"]["podSelector"], labels)]
    if not policies:
        return True  # not isolated in this direction
    for pol in policies:
        for rule in pol["spec"].get(direction, []):
            port_ok = not rule.get("ports") or any(p.get("port") == port for p in rule["ports"])
            peer_ok = peers not in rule or any(_peer_matches(p, ns, peer_ns, peer_labels) for p in rule[peers])
            if port_ok and peer_ok:
                return True
    return False


def reachable(objs: list[dict], src: tuple[str, dict], dst: tuple[str, dict], port: int) -> bool:
    """May a pod (namespace, labels) open TCP `port` on another pod? Both ends' policies must allow it."""
    (src_ns, src_labels), (dst_ns, dst_labels) = src, dst
    return (_side_allows(objs, "egress", src_ns, src_labels, dst_ns, dst_labels, port)
            and _side_allows(objs, "ingress", dst_ns, dst_labels, src_ns, src_labels, port))
