"""Prometheus can scrape the predictors in the cluster, with least privilege: the PodMonitors of
deploy/k8s select the pods by the labels KServe/Knative and Seldon give them, on the ports the
manifests and the code declare, in the namespace and with the labels the Prometheus that
deploy/terraform installs watches, and authenticate with a `metrics`-scope token that External
Secrets delivers into their own namespace. Both runtimes read the hashed keys.json the serving
ExternalSecret makes. Rendered objects only (no API server can run here)."""

from __future__ import annotations

import re

import pytest
import yaml

from llama_platform.k8s import common, serving
from llama_platform.resources.serving import KServeEndpointResource
from llama_platform_tests.deploy import crds, policy
from llama_platform_tests.deploy.manifests import DEPLOY, OVERLAYS, helm_values, objects

MONITORING_TF = DEPLOY / "terraform" / "modules" / "monitoring" / "main.tf"
PROMETHEUS_VALUES = DEPLOY / "helm" / "kube-prometheus-stack-values.yaml"


def _find(objs: list[dict], kind: str, name: str) -> dict:
    [obj] = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj


def _external_secret(objs: list[dict], namespace: str, name: str) -> dict:
    [es] = [o for o in objs if o["kind"] == "ExternalSecret" and o["metadata"]["namespace"] == namespace
            and o["spec"]["target"]["name"] == name]
    return es


def _container(pod: dict, name: str) -> dict:
    [c] = [c for c in pod["containers"] if c["name"] == name]
    return c


@pytest.fixture(scope="module", params=OVERLAYS)
def objs(request) -> list[dict]:
    return objects(request.param)


def test_podmonitors_select_the_predictor_pods_by_the_labels_they_get(objs):
    predictor = _find(objs, "PodMonitor", "llama-platform-predictor")
    assert predictor["spec"]["namespaceSelector"] == {"matchNames": [common.NAMESPACES["serving"]]}
    # KServe labels every predictor pod with its InferenceService's name: the one the code builds
    # and the k8s endpoint resource applies.
    key, value = serving.PREDICTOR_POD_LABEL
    assert predictor["spec"]["selector"] == {"matchLabels": {key: value}}
    isvc = serving.to_dict(serving.inference_service("s3://llama-platform/models/m"))
    assert isvc["metadata"]["name"] == value == KServeEndpointResource.model_fields["model_name"].default
    assert isvc["metadata"]["namespace"] == common.NAMESPACES["serving"]
    # Its ports: Knative's name for the user container's port, and the ServingRuntime's own (RawDeployment);
    # both are the container port the server listens on, and /metrics is served there.
    runtime = _find(objs, "ServingRuntime", serving.SERVING_RUNTIME)
    [port] = _container(runtime["spec"], "kserve-container")["ports"]
    assert "--http-port=%d" % port["containerPort"] in _container(runtime["spec"], "kserve-container")["args"]
    ports = [e["port"] for e in predictor["spec"]["podMetricsEndpoints"]]
    assert ports == [serving.METRICS_PORT_NAMES["kserve"], port["name"]]
    assert all(e["path"] == "/metrics" for e in predictor["spec"]["podMetricsEndpoints"])
    # No prometheus.io annotations pretending to do the job (kube-prometheus-stack ignores them).
    assert not any(k.startswith("prometheus.io/") for k in isvc["metadata"]["annotations"])


def test_podmonitors_select_the_seldon_server_pods_on_their_metrics_port(objs):
    monitor = _find(objs, "PodMonitor", "llama-platform-mlserver")
    key, value = serving.SELDON_POD_LABEL
    assert monitor["spec"]["selector"] == {"matchLabels": {key: value}}
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [common.NAMESPACES["serving"]]}
    server = _find(objs, "Server", value)  # Seldon labels the Server's pods with its name
    for pod in (server["spec"]["podSpec"], serving.seldon_server()["spec"]["podSpec"]):
        mlserver = _container(pod, "mlserver")
        env = {e["name"]: e.get("value") for e in mlserver["env"]}
        [port] = mlserver["ports"]
        # The declared port is the one MLServer's metrics server listens on, and the one scraped.
        assert port["containerPort"] == int(env["MLSERVER_METRICS_PORT"]) == serving.MLSERVER_METRICS_PORT
        assert [e["port"] for e in monitor["spec"]["podMetricsEndpoints"]] == [port["name"]]


def test_podmonitors_scrape_with_the_metrics_token_from_external_secrets(objs):
    monitors = [o for o in objs if o["kind"] == "PodMonitor"]
    assert len(monitors) == 2
    for monitor in monitors:
        ns = monitor["metadata"]["namespace"]
        assert ns == common.NAMESPACES["monitoring"]
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            auth = endpoint["authorization"]
            assert auth.get("type", "Bearer") == "Bearer" and "bearerTokenSecret" not in endpoint
            credentials = auth["credentials"]
            assert credentials["name"] == common.PROMETHEUS_TOKEN_SECRET
            # The Secret a PodMonitor reads must be in its own namespace, made by External Secrets.
            es = _external_secret(objs, ns, credentials["name"])
            assert [d["secretKey"] for d in es["spec"]["data"]] == [credentials["key"]]
            assert es["spec"]["secretStoreRef"]["name"] in {
                o["metadata"]["name"] for o in objs if o["kind"] == "SecretStore" and o["metadata"]["namespace"] == ns}
    # The plain token is readable only from monitoring's store; serving holds its hash (keys.json) only.
    token_paths = {d["remoteRef"]["key"] for d in _external_secret(objs, "monitoring", common.PROMETHEUS_TOKEN_SECRET)
                   ["spec"]["data"]}
    serving_paths = {d["remoteRef"]["key"] for o in objs if o["kind"] == "ExternalSecret"
                     and o["metadata"]["namespace"] == "serving" for d in o["spec"].get("data", [])}
    assert token_paths and not token_paths & serving_paths


def test_the_prometheus_deploy_installs_selects_these_podmonitors(objs):
    """kube-prometheus-stack's values (deploy/helm, used by Terraform and by hand) name the PodMonitor
    label and namespace selectors explicitly; the chart's default would select `release: <release
    name>` and miss them."""
    spec = yaml.safe_load(PROMETHEUS_VALUES.read_text())["prometheus"]["prometheusSpec"]
    assert spec["podMonitorSelectorNilUsesHelmValues"] is False
    [(label, value)] = spec["podMonitorSelector"]["matchLabels"].items()
    [(ns_label, ns)] = spec["podMonitorNamespaceSelector"]["matchLabels"].items()
    assert ns_label == "kubernetes.io/metadata.name"
    assert _find(objs, "Namespace", ns)["metadata"]["name"] == common.NAMESPACES["monitoring"]
    monitors = [o for o in objs if o["kind"] == "PodMonitor"]
    for monitor in monitors:
        assert monitor["metadata"]["labels"][label] == value
        assert monitor["metadata"]["namespace"] == ns
    # The Prometheus pods run restricted in `monitoring` (Pod Security refuses anything else).
    assert policy.pod_violations("prometheus", {"securityContext": spec["securityContext"], "containers": []}) == []
    # Terraform installs the chart with these values, then applies the PodMonitors (slice
    # `monitoring`) once the chart has brought their CRD.
    tf = MONITORING_TF.read_text()
    assert "file(var.values_file)" in tf
    for env in ("dev", "prod"):
        root = (DEPLOY / "terraform" / "envs" / env / "main.tf").read_text()
        assert '"${local.helm}/kube-prometheus-stack-values.yaml"' in root, env
    assert re.search(r'module_label\s*=\s*"monitoring"\s*\n\s*depends_on\s*=\s*\[helm_release\.kube_prometheus_stack\]', tf)


def test_both_runtimes_read_the_hashed_keys_file_the_external_secret_makes(objs):
    es = _external_secret(objs, common.NAMESPACES["serving"], common.SERVING_KEYS_SECRET)
    # One key, the keys file: hashed, scoped keys (no plain key in the serving namespace).
    assert [d["secretKey"] for d in es["spec"]["data"]] == [serving.KEYS_FILE]
    server = _find(objs, "Server", serving.SELDON_SERVER)
    built_isvc = serving.to_dict(serving.inference_service("s3://llama-platform/models/m"))["spec"]["predictor"]
    pods = {
        "InferenceService (code)": (built_isvc, built_isvc["model"]),
        "Seldon Server (code)": (serving.seldon_server()["spec"]["podSpec"],
                                 _container(serving.seldon_server()["spec"]["podSpec"], "mlserver")),
        "Seldon Server (deploy/k8s)": (server["spec"]["podSpec"], _container(server["spec"]["podSpec"], "mlserver")),
    }
    for where, (pod, container) in pods.items():
        [volume] = [v for v in pod["volumes"] if v.get("secret", {}).get("secretName") == common.SERVING_KEYS_SECRET]
        [mount] = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
        assert mount["readOnly"] is True and "subPath" not in mount, where  # subPath mounts never update
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["LLAMA_PLATFORM_SERVING_KEYS_FILE"] == f"{mount['mountPath']}/{serving.KEYS_FILE}", where
        assert not any(src.get("secretRef", {}).get("name") == common.SERVING_KEYS_SECRET
                       for src in container.get("envFrom", [])), where
    # Nothing in serving reads the old single plain key.
    runtime = _find(objs, "ServingRuntime", serving.SERVING_RUNTIME)
    for c in runtime["spec"]["containers"]:
        assert not any(src.get("secretRef", {}).get("name") == common.SERVING_KEYS_SECRET for src in c.get("envFrom", []))


def test_canary_reaches_prometheus_and_knows_where_it_is(objs):
    from llama_platform.settings import load_settings

    [cm] = [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == common.CONFIG_MAP
            and o["metadata"]["namespace"] == "dagster"]
    settings = load_settings(cm["data"])
    host, port = re.fullmatch(r"http://([^:/]+):(\d+)", settings.prometheus_url).groups()
    name, ns = host.split(".")[:2]
    assert ns == common.NAMESPACES["monitoring"] and name == "kube-prometheus-stack-prometheus"
    egress = _find(objs, "NetworkPolicy", "dagster-egress-prometheus")["spec"]["egress"]
    assert [p["port"] for rule in egress for p in rule["ports"]] == [int(port)]
    assert egress[0]["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == ns
    # The smoke test's URL is the predictor Service KServe makes for the InferenceService, as the Ingress's.
    isvc_name = serving.PREDICTOR_POD_LABEL[1]
    assert settings.serving_url == f"http://{isvc_name}-predictor.{common.NAMESPACES['serving']}.svc.cluster.local"
    ingress = _find(objs, "Ingress", "model-endpoint")
    backends = {p["backend"]["service"]["name"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
    assert backends == {f"{isvc_name}-predictor"}


@pytest.mark.parametrize("breaks", [
    lambda o: o["spec"]["podMetricsEndpoints"][0].update(bearerToken="abc"),  # removed from the CRD
    lambda o: o["spec"]["podMetricsEndpoints"][0]["authorization"]["credentials"].pop("key"),
    lambda o: o["spec"]["podMetricsEndpoints"][0].update(portNumber="8080"),
    lambda o: o["spec"]["podMetricsEndpoints"][0].update(interval="15 seconds"),
    lambda o: o["spec"]["namespaceSelector"].update(matchName=["serving"]),
    lambda o: o["spec"].pop("selector"),
])
def test_podmonitor_schema_catches_errors(breaks):
    monitor = _find(objects("dev"), "PodMonitor", "llama-platform-predictor")
    assert crds.crd_errors(monitor) == []
    breaks(monitor)
    assert crds.crd_errors(monitor), "a broken PodMonitor passed"


def test_the_smoke_test_has_a_predict_key_where_the_definitions_load_and_run(objs):
    """deployed_endpoint smoke-tests the predictor with LLAMA_PLATFORM_API_KEY (definitions.py reads
    it where the code loads, the user-code pods, and resolves it in the run pods): the client key,
    made by External Secrets in dagster from a Vault path serving's store does not read."""
    from llama_platform.settings import SERVING_API_KEY_ENV

    es = _external_secret(objs, common.NAMESPACES["dagster"], common.SERVING_CLIENT_SECRET)
    assert [d["secretKey"] for d in es["spec"]["data"]] == [SERVING_API_KEY_ENV]
    serving_paths = {d["remoteRef"]["key"] for o in objs if o["kind"] == "ExternalSecret"
                     and o["metadata"]["namespace"] == "serving" for d in o["spec"].get("data", [])}
    assert not {d["remoteRef"]["key"] for d in es["spec"]["data"]} & serving_paths
    values = helm_values()
    [user_code] = values["dagster-user-deployments"]["deployments"]
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    for where in (user_code, launcher):
        assert common.SERVING_CLIENT_SECRET in [s["name"] for s in where["envSecrets"]]
