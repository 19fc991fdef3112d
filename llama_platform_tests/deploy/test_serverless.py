"""KServe runs Serverless, as the canary needs: llama_platform/k8s/serving.py rolls a candidate out
with `canaryTrafficPercent`, which only KServe's Serverless mode (Knative revisions and their
traffic split) honours. deploy/ installs Knative Serving (Knative Operator + KnativeServing with
Kourier, deploy/k8s/knative) and sets KServe's default deploy mode to Serverless, in Terraform and
in deploy/README.md's by-hand steps; the serving namespace admits Knative's data plane and nothing
else to the predictor; the revision pod, queue-proxy included, is Pod Security "restricted".
Rendered objects and files only (no API server can run here)."""

from __future__ import annotations

import copy
import re

import kubernetes_validate
import pytest
import yaml

from llama_platform.k8s import common, serving
from llama_platform_tests.deploy import crds, policy
from llama_platform_tests.deploy.manifests import DEPLOY, K8S, kustomize_build, objects

KNATIVE = K8S / "knative"
KSERVE_TF = DEPLOY / "terraform" / "modules" / "kserve"
README = (DEPLOY / "README.md").read_text()
SERVING_NS = common.NAMESPACES["serving"]
KNATIVE_NS = "knative-serving"
# Pod labels of Knative's data plane in knative-serving (Knative's and net-kourier's manifests).
KOURIER_GATEWAY = (KNATIVE_NS, {"app": "3scale-kourier-gateway"})
ACTIVATOR = (KNATIVE_NS, {"app": "activator"})
AUTOSCALER = (KNATIVE_NS, {"app": "autoscaler"})
KNATIVE_CONTROLLER = (KNATIVE_NS, {"app": "controller"})
# queue-proxy's ports (knative.dev/networking: BackendHTTPPort, BackendHTTP2Port,
# AutoscalingQueueMetricsPort) and Kourier's internal listener (kourier-internal -> 8081).
QUEUE_HTTP1, QUEUE_H2C, QUEUE_AUTOSCALING_METRICS, KOURIER_INTERNAL = 8012, 8013, 9090, 8081
# The securityContext Knative gives queue-proxy on every revision pod, transcribed from
# knative/serving pkg/reconciler/revision/resources/queue.go (queueSecurityContext); its resources
# come from config-deployment (set in deploy/k8s/knative).
QUEUE_PROXY_SECURITY_CONTEXT = {
    "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
}


def _knative() -> list[dict]:
    return [d for d in yaml.safe_load_all(kustomize_build(KNATIVE)) if d]


def _knative_serving() -> dict:
    [ks] = [o for o in _knative() if o["kind"] == "KnativeServing"]
    return ks


def _canary_isvc() -> dict:
    return serving.to_dict(serving.inference_service("s3://llama-platform/models/candidate", 10))


def _find(objs: list[dict], kind: str, name: str) -> dict:
    [obj] = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj


def _kserve_values() -> dict:
    return yaml.safe_load((DEPLOY / "helm" / "kserve-values.yaml").read_text())


def _tf_default(name: str) -> str:
    block = (KSERVE_TF / "variables.tf").read_text().split(f'variable "{name}"')[1].split("\nvariable ")[0]
    return re.search(r'default\s*=\s*"([^"]+)"', block).group(1)


# ---------------------------------------------------------------- the mode the code needs is the one installed


def test_the_deploy_mode_installed_is_the_one_the_canary_requires():
    isvc = _canary_isvc()
    mode = isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"]
    assert mode == "Serverless" and isvc["spec"]["predictor"]["canaryTrafficPercent"] == 10
    # The kserve chart's values (Terraform and by hand): inferenceservice-config's default is that
    # mode, with Kourier instead of Istio.
    controller = _kserve_values()["kserve"]["controller"]
    assert controller["deploymentMode"] == mode and controller["gateway"]["disableIstioVirtualHost"] is True
    # Terraform installs the chart with those values, refuses another mode, and waits for Knative
    # first (KServe's Serverless mode needs Knative's CRDs and webhooks).
    main = (KSERVE_TF / "main.tf").read_text()
    kserve_release = main.split('resource "helm_release" "kserve" {')[1].split("\nresource ")[0]
    assert "values = [file(var.values_file)]" in kserve_release
    assert re.search(r"deploymentMode == var\.deployment_mode", kserve_release)
    assert "terraform_data.knative_ready" in kserve_release
    assert _tf_default("deployment_mode") == mode
    assert f'var.deployment_mode == "{mode}"' in (KSERVE_TF / "variables.tf").read_text()
    assert "RawDeployment" not in re.sub(r"#.*", "", main)
    for env in ("dev", "prod"):
        root = (DEPLOY / "terraform" / "envs" / env / "main.tf").read_text()
        assert 'values_file     = "${local.helm}/kserve-values.yaml"' in root, env
    # The by-hand steps install the same.
    [helm_kserve] = re.findall(r"helm install kserve oci://\S+ .*?(?<!\\)\n", README, flags=re.S)
    assert "-f deploy/helm/kserve-values.yaml" in helm_kserve and "--set" not in helm_kserve


def test_knative_serving_is_pinned_to_kserves_pairing_in_terraform_and_readme():
    version = _knative_serving()["spec"]["version"]
    # kserve-deps.env of KServe's recent releases: KNATIVE_SERVING_VERSION=1.21.1, operator v1.21.1.
    assert version == "1.21.1"
    operator = _tf_default("knative_operator_version")
    assert operator.lstrip("v").split(".")[:2] == version.split(".")[:2]  # the operator serves its own minor
    main = (KSERVE_TF / "main.tf").read_text()
    assert "knative-${var.knative_operator_version}/knative-operator-${var.knative_operator_version}.tgz" in main
    # The README installs the same operator release and applies the same KnativeServing object.
    assert f"knative-{operator}/knative-operator-{operator}.tgz" in README
    assert "kubectl apply -k deploy/k8s/knative" in README
    assert "wait knativeserving/knative-serving --for=condition=Ready" in README
    # Both environments pass deploy/k8s/knative to the module.
    for env in ("dev", "prod"):
        root = (DEPLOY / "terraform" / "envs" / env / "main.tf").read_text()
        assert 'knative = abspath("${path.module}/../../../k8s/knative")' in root
        assert re.search(r"knative_path\s*=\s*local\.knative", root), env


# ---------------------------------------------------------------- deploy/k8s/knative validates


def test_knative_kustomization_builds_and_validates():
    objs = _knative()
    assert {o["kind"] for o in objs} == {"Namespace", "KnativeServing"}
    for o in objs:
        if o["kind"] == "Namespace":
            kubernetes_validate.validate(o, "1.37.0", strict=True)
            assert o["metadata"]["name"] == KNATIVE_NS
        else:
            assert crds.crd_errors(o) == [], o
            assert o["metadata"]["namespace"] == KNATIVE_NS


@pytest.mark.parametrize("breaks", [
    lambda o: o["spec"]["ingress"]["kourier"].update(serviceType="ClusterIP"),  # the CRD spells service-type
    lambda o: o["spec"]["ingress"]["kourier"].update(enabled="true"),
    lambda o: o["spec"]["config"]["features"].update({"secure-pod-defaults": True}),  # ConfigMap values are strings
    lambda o: o["spec"].update(versions="1.21.1"),
    lambda o: o["spec"]["ingress"].update(kourrier={"enabled": True}),
    lambda o: o["spec"].update(config={"features": ["secure-pod-defaults"]}),
])
def test_knative_serving_schema_catches_errors(breaks):
    obj = copy.deepcopy(_knative_serving())
    breaks(obj)
    assert crds.crd_errors(obj), "a broken KnativeServing passed"


def test_knative_admits_the_pod_spec_the_inference_service_asks_for():
    """Knative refuses pod-spec fields behind feature flags; the InferenceService (GPU shape) uses them."""
    config = _knative_serving()["spec"]["config"]
    features = config["features"]
    predictor = _canary_isvc()["spec"]["predictor"]
    needs = {
        "kubernetes.podspec-nodeselector": bool(predictor.get("nodeSelector")),
        "kubernetes.podspec-tolerations": bool(predictor.get("tolerations")),
        # runAsUser/runAsGroup/fsGroup on the pod are masked unless this flag is on.
        "kubernetes.podspec-securitycontext": bool(predictor.get("securityContext")),
        "kubernetes.podspec-emptydir": any("emptyDir" in v for v in predictor.get("volumes", [])),
    }
    assert all(needs.values()), needs  # the GPU-shaped InferenceService uses every one of them
    for flag in needs:
        assert features[flag] == "enabled", flag
    assert features["secure-pod-defaults"] == "enabled"
    # Kourier is the networking layer, and only inside the cluster (ingress-nginx is the public edge).
    assert config["network"]["ingress-class"] == "kourier.ingress.networking.knative.dev"
    kourier = _knative_serving()["spec"]["ingress"]["kourier"]
    assert kourier == {"enabled": True, "service-type": "ClusterIP"}


def test_the_revision_pod_with_queue_proxy_is_restricted_with_requests_and_limits():
    """The predictor pod KServe and Knative make: the InferenceService's pod-level context and user
    container (the ServingRuntime's container with the InferenceService's overrides), KServe's
    storage-initializer (its ClusterStorageContainer from the chart's values) and Knative's
    queue-proxy (Knative's securityContext, resources from deploy/k8s/knative's config-deployment)."""
    predictor = _canary_isvc()["spec"]["predictor"]
    deployment = _knative_serving()["spec"]["config"]["deployment"]
    storage = _kserve_values()["kserve"]["storage"]
    queue_proxy = {
        "name": "queue-proxy",
        "securityContext": QUEUE_PROXY_SECURITY_CONTEXT,
        "resources": {
            "requests": {"cpu": deployment["queue-sidecar-cpu-request"],
                         "memory": deployment["queue-sidecar-memory-request"]},
            "limits": {"cpu": deployment["queue-sidecar-cpu-limit"], "memory": deployment["queue-sidecar-memory-limit"]},
        },
    }
    storage_initializer = {"name": "storage-initializer", "securityContext": storage["containerSecurityContext"],
                           "resources": storage["resources"]}
    user = {**predictor["model"], "name": "kserve-container"}
    pod = {"securityContext": predictor["securityContext"], "initContainers": [storage_initializer],
           "containers": [user, queue_proxy], "volumes": predictor["volumes"]}
    assert policy.pod_violations("revision-pod", pod) == []
    # Without the config-deployment limits queue-proxy would have a CPU request only.
    bare = copy.deepcopy(pod)
    bare["containers"][1]["resources"] = {"requests": {"cpu": "25m"}}
    assert len(policy.pod_violations("revision-pod", bare)) == 3
    # Without the chart's containerSecurityContext the storage-initializer would not be restricted.
    bare = copy.deepcopy(pod)
    bare["initContainers"][0]["securityContext"] = {}
    assert policy.pod_violations("revision-pod", bare)


def test_the_serving_runtime_fits_a_knative_revision():
    """Knative allows one container port, named http1 or h2c, and renames it `user-port`, the name
    the predictor PodMonitor scrapes."""
    for overlay in ("dev", "prod"):
        objs = objects(overlay)
        runtime = _find(objs, "ServingRuntime", serving.SERVING_RUNTIME)
        [container] = runtime["spec"]["containers"]
        [port] = container["ports"]
        assert port["name"] in ("http1", "h2c")
        for probe in ("livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["port"] == port["containerPort"]
        monitor = _find(objs, "PodMonitor", "llama-platform-predictor")
        assert [e["port"] for e in monitor["spec"]["podMetricsEndpoints"]] == ["user-port"]


# ---------------------------------------------------------------- the network path


def _predictor_pod() -> tuple[str, dict]:
    """The labels KServe puts on the predictor's revision pods (the InferenceService's name)."""
    key, value = serving.PREDICTOR_POD_LABEL
    isvc = _canary_isvc()
    assert isvc["metadata"]["name"] == value
    return SERVING_NS, {key: value, "component": "predictor", **isvc["metadata"]["labels"]}


@pytest.mark.parametrize("overlay", ("dev", "prod"))
def test_serving_admits_knatives_data_plane_and_nothing_else(overlay):
    objs = objects(overlay)
    pod = _predictor_pod()
    prometheus = (common.NAMESPACES["monitoring"], {"app.kubernetes.io/name": "prometheus"})
    dagster_run = (common.NAMESPACES["dagster"], {"app.kubernetes.io/part-of": "llama-platform"})
    nginx = ("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
    sources = {"kourier-gateway": KOURIER_GATEWAY, "activator": ACTIVATOR, "autoscaler": AUTOSCALER,
               "knative-controller": KNATIVE_CONTROLLER, "prometheus": prometheus, "dagster-run": dagster_run,
               "ingress-nginx": nginx}
    allowed = {
        ("kourier-gateway", QUEUE_HTTP1), ("kourier-gateway", QUEUE_H2C),
        ("activator", QUEUE_HTTP1), ("activator", QUEUE_H2C),
        ("autoscaler", QUEUE_AUTOSCALING_METRICS),
        ("prometheus", 8080),  # the predictor's /metrics on user-port
    }
    for name, src in sources.items():
        for port in (8080, QUEUE_HTTP1, QUEUE_H2C, QUEUE_AUTOSCALING_METRICS, 8022):
            assert policy.reachable(objs, src, pod, port) == ((name, port) in allowed), (name, port)
    # The Seldon Server's pods are not opened to Knative.
    seldon = (SERVING_NS, dict([serving.SELDON_POD_LABEL]))
    assert not policy.reachable(objs, KOURIER_GATEWAY, seldon, QUEUE_HTTP1)
    # The deploy smoke test (dagster run pods) reaches the predictor through Kourier's internal
    # listener only, and Prometheus' scrape leaves monitoring for the predictor's metrics port.
    assert policy.reachable(objs, dagster_run, KOURIER_GATEWAY, KOURIER_INTERNAL)
    assert not policy.reachable(objs, dagster_run, pod, 8080)
    assert not policy.reachable(objs, dagster_run, (KNATIVE_NS, {"app": "webhook"}), KOURIER_INTERNAL)


def test_network_evaluator_catches_an_open_policy():
    objs = objects("dev")
    pod = _predictor_pod()
    nginx = ("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
    assert not policy.reachable(objs, nginx, pod, 8080)
    objs.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                 "metadata": {"name": "oops", "namespace": SERVING_NS},
                 "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]}})
    assert policy.reachable(objs, nginx, pod, 8080)
    # Without the default deny nothing would be isolated either.
    no_deny = [o for o in objects("dev") if o["kind"] != "NetworkPolicy" or o["metadata"]["namespace"] != SERVING_NS]
    assert policy.reachable(no_deny, nginx, pod, 8080)


@pytest.mark.parametrize("overlay", ("dev", "prod"))
def test_model_endpoint_ingress_routes_to_kourier(overlay):
    """Serverless makes no plain predictor Service to point an Ingress at: the Ingress sends requests
    to Kourier's internal listener with the host of the predictor's Knative route."""
    objs = objects(overlay)
    ingress = _find(objs, "Ingress", "model-endpoint")
    assert ingress["metadata"]["namespace"] == SERVING_NS
    backends = {(p["backend"]["service"]["name"], p["backend"]["service"]["port"]["number"])
                for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
    [(name, port)] = backends
    service = next(o for o in objs if o["kind"] == "Service" and o["metadata"]["name"] == name
                   and o["metadata"]["namespace"] == SERVING_NS)
    assert service["spec"]["type"] == "ExternalName"
    assert service["spec"]["externalName"] == f"kourier-internal.{KNATIVE_NS}.svc.cluster.local"
    assert port in {p["port"] for p in service["spec"]["ports"]}
    isvc = _canary_isvc()
    host = f"{isvc['metadata']['name']}-predictor.{isvc['metadata']['namespace']}.svc.cluster.local"
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/upstream-vhost"] == host
