"""Least privilege on the rendered objects (SECURITY.md): RBAC, Pod Security, network policies,
secrets. Each rule is also shown to catch a violating object, so a passing run means something."""

from __future__ import annotations

import copy

import pytest

from llama_platform.k8s import common
from llama_platform_tests.deploy import policy
from llama_platform_tests.deploy.manifests import HELM_VALUES, OVERLAYS, helm_pod_specs, helm_values, objects

DAGSTER_NS, DAGSTER_RUN = common.SERVICE_ACCOUNTS["dagster_run"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_wildcards_no_cluster_roles_no_broad_bindings(overlay):
    assert policy.rbac_violations(objects(overlay)) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_dagster_run_pods_launch_only_where_they_must(overlay):
    granted = policy.grants(objects(overlay), DAGSTER_NS, DAGSTER_RUN)
    # Nothing in data or monitoring, nothing cluster-wide.
    assert set(granted) == {"dagster", "training", "serving"}
    creates = {ns: {(g, r) for g, r, v in perms if v == "create"} for ns, perms in granted.items()}
    # Step Jobs of the k8s_job_executor beside the run; no bare pods, nothing else.
    assert creates["dagster"] == {("batch", "jobs")}
    # Training: the Pipes pod and TrainJobs only here.
    assert creates["training"] == {("", "pods"), ("trainer.kubeflow.org", "trainjobs")}
    # Serving: InferenceServices and Seldon Models/Experiments only here.
    assert creates["serving"] == {("serving.kserve.io", "inferenceservices"), ("mlops.seldon.io", "models"),
                                  ("mlops.seldon.io", "experiments")}
    assert ("", "pods/log", "get") in granted["training"]
    # It cannot read any Secret anywhere.
    assert not any(r == "secrets" for perms in granted.values() for _, r, _ in perms)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_model_server_reads_only_its_model_secret(overlay):
    objs = objects(overlay)
    ns, name = common.SERVICE_ACCOUNTS["model_server"]
    assert dict(policy.grants(objs, ns, name)) == {"serving": {("", "secrets", "get")}}
    role = next(o for o in objs if o["kind"] == "Role" and o["metadata"]["name"] == "model-server-read-model")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": [common.S3_SECRET],
                              "verbs": ["get"]}]
    # The trainer, MLflow and Feast accounts have no API permissions at all, and no token.
    for key in ("trainer", "mlflow", "feast"):
        sa_ns, sa = common.SERVICE_ACCOUNTS[key]
        assert not policy.grants(objs, sa_ns, sa), key
        account = next(o for o in objs if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == sa)
        assert account["automountServiceAccountToken"] is False


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_namespace_restricted_and_default_deny(overlay):
    assert policy.namespace_violations(objects(overlay)) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_restricted_with_requests_and_limits(overlay):
    assert policy.all_pod_violations(objects(overlay)) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_long_running_containers_have_liveness_and_readiness_probes(overlay):
    for obj in objects(overlay):
        if obj["kind"] in ("Deployment", "StatefulSet"):
            for c in obj["spec"]["template"]["spec"]["containers"]:
                assert "livenessProbe" in c and "readinessProbe" in c, f"{obj['kind']}/{obj['metadata']['name']}/{c['name']}"
        if obj["kind"] == "ServingRuntime":
            for c in obj["spec"]["containers"]:
                assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"


@pytest.mark.parametrize("values", HELM_VALUES[:1])
def test_dagster_chart_pods_restricted_with_requests_and_limits(values):
    pods = list(helm_pod_specs(helm_values(values)))
    assert len(pods) == 4
    for where, pod in pods:
        assert policy.pod_violations(where, pod) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_in_git_and_every_secret_comes_from_external_secrets(overlay):
    assert policy.secret_violations(objects(overlay)) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_uis_need_a_login_and_every_host_has_tls(overlay):
    ingresses = {o["metadata"]["name"]: o for o in objects(overlay) if o["kind"] == "Ingress"}
    for name in ("dagster-webserver", "mlflow"):
        annotations = ingresses[name]["metadata"]["annotations"]
        assert annotations["nginx.ingress.kubernetes.io/auth-url"].startswith("http://oauth2-proxy.dagster.svc")
        assert "/oauth2/start" in annotations["nginx.ingress.kubernetes.io/auth-signin"]
    # The login is not open to every account of the identity provider.
    proxy = next(o for o in objects(overlay) if o["kind"] == "Deployment" and o["metadata"]["name"] == "oauth2-proxy")
    args = proxy["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--email-domain=*" not in args and any(a.startswith("--email-domain=") for a in args)
    for ing in ingresses.values():
        hosts = {r["host"] for r in ing["spec"]["rules"]}
        tls_hosts = {h for t in ing["spec"]["tls"] for h in t["hosts"]}
        assert hosts <= tls_hosts, ing["metadata"]["name"]
        assert ing["metadata"]["annotations"]["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"


def test_network_policies_allow_only_the_documented_flows():
    objs = objects("dev")
    policies = {(o["metadata"]["namespace"], o["metadata"]["name"]): o["spec"]
                for o in objs if o["kind"] == "NetworkPolicy"}

    def sources(ns: str) -> set[str]:
        """Namespaces allowed into `ns` (by name), from every ingress rule there."""
        out = set()
        for (pns, _), spec in policies.items():
            for rule in spec.get("ingress", []) if pns == ns else []:
                for peer in rule.get("from", []):
                    if "namespaceSelector" in peer:
                        out.add(peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"])
                    else:
                        out.add(ns)
        return out

    assert sources("data") == {"data", "dagster", "training", "serving", "ingress-nginx", "monitoring"}
    assert sources("training") == {"training"}
    assert sources("serving") == {"serving", "ingress-nginx", "dagster", "monitoring"}
    assert sources("dagster") == {"dagster", "ingress-nginx"}
    # monitoring: only the canary (dagster run pods) reaches Prometheus' query API, nothing else.
    assert sources("monitoring") == {"monitoring", "dagster"}
    [into_prometheus] = [spec for (ns, name), spec in policies.items() if ns == "monitoring" and spec.get("ingress")
                         and name != "allow-same-namespace"]
    assert into_prometheus["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}
    assert [p["port"] for rule in into_prometheus["ingress"] for p in rule["ports"]] == [9090]
    # Prometheus reaches the serving pods on their metrics ports only (KServe's 8080, MLServer's 8082).
    scrape = policies[("monitoring", "monitoring-egress-metrics")]["egress"]
    assert {p["port"] for rule in scrape for peer in rule["to"]
            if peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == "serving"
            for p in rule["ports"]} == {8080, 8082}
    from_monitoring = {p["port"] for (ns, _), spec in policies.items() if ns == "serving"
                       for rule in spec.get("ingress", []) for peer in rule.get("from", [])
                       if peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                       == "monitoring" for p in rule["ports"]}
    assert from_monitoring == {8080, 8082}
    # training reaches only MinIO and MLflow in data (and DNS, and its own pods).
    egress = policies[("training", "training-egress-data")]["egress"]
    assert {p["port"] for rule in egress for p in rule["ports"]} == {9000, 5000}


# The checks themselves catch violations (so the passing tests above can fail).

def _first(kind: str, name: str | None = None) -> dict:
    return copy.deepcopy(next(o for o in objects("dev")
                              if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)))


def test_policy_catches_wildcards_cluster_admin_and_open_secrets():
    role = _first("Role", "dagster-run-training")
    role["rules"][0]["verbs"] = ["*"]
    secrets_role = _first("Role", "model-server-read-model")
    del secrets_role["rules"][0]["resourceNames"]
    binding = _first("RoleBinding")
    binding["roleRef"] = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"}
    cluster_role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "x"},
                    "rules": []}
    found = policy.rbac_violations([role, secrets_role, binding, cluster_role])
    assert len(found) == 4, found


def test_policy_catches_unrestricted_pods_and_missing_limits():
    sts = _first("StatefulSet", "minio")
    pod = sts["spec"]["template"]["spec"]
    container = pod["containers"][0]
    container["securityContext"]["readOnlyRootFilesystem"] = False
    container["securityContext"]["capabilities"] = {"add": ["NET_ADMIN"], "drop": ["ALL"]}
    del container["resources"]["limits"]["memory"]
    pod["securityContext"]["seccompProfile"] = {"type": "Unconfined"}
    pod["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    found = policy.all_pod_violations([sts])
    assert len(found) == 5, found  # root fs, capabilities, memory limit, pod seccomp, hostPath


def test_policy_catches_a_namespace_without_default_deny_or_restricted_label():
    objs = [o for o in objects("dev") if not (o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "default-deny"
                                              and o["metadata"]["namespace"] == "serving")]
    ns = next(o for o in objs if o["kind"] == "Namespace" and o["metadata"]["name"] == "training")
    ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] = "baseline"
    assert sorted(policy.namespace_violations(objs)) == [
        "Namespace/-/serving: no default-deny NetworkPolicy (ingress and egress)",
        "Namespace/-/training: pod-security enforce is not restricted",
    ]


def test_policy_catches_a_plaintext_secret_and_an_unmanaged_secret_reference():
    objs = objects("dev")
    objs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "oops", "namespace": "data"},
                 "stringData": {"password": "hunter2"}})
    mlflow = next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "mlflow")
    mlflow["spec"]["template"]["spec"]["containers"][0]["envFrom"].append({"secretRef": {"name": "handmade"}})
    found = policy.secret_violations(objs)
    assert len(found) == 2 and "oops" in found[0] and "handmade" in found[1], found
