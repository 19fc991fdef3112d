"""Serving objects built in code: the KServe InferenceService (SDK models), the Seldon Core 2 objects
(CRD schemas), the S3 credentials wiring, and the canary state machine."""

from __future__ import annotations

import re

import jsonschema
import pytest

from llama_platform.k8s import common
from llama_platform.k8s.serving import (
    KEYS_MOUNT,
    CanaryMetrics,
    CanaryPolicy,
    ServingShape,
    begin,
    canary_queries,
    desired_inference_service,
    inference_service,
    model_server_s3_secret,
    model_server_service_account,
    run_canary,
    seldon_objects,
    step,
    to_dict,
    validate_seldon,
)

CHAMPION = "s3://models/llama4-issue-triage/3/model_dir"
CANDIDATE = "s3://models/llama4-issue-triage/4/model_dir"
POLICY = CanaryPolicy(canary_percent=10, min_requests=100, max_error_rate=0.01, max_p95_latency_s=1.0,
                      max_latency_ratio=1.5)


def test_inference_service_shape():
    isvc = to_dict(inference_service(CANDIDATE, 10, ServingShape(min_replicas=2, max_replicas=6, gpus=1)))
    from llama_platform_tests.deploy.crds import crd_errors

    assert crd_errors(isvc) == []  # every field and type known to the kserve SDK's InferenceService
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1" and isvc["kind"] == "InferenceService"
    assert isvc["metadata"]["namespace"] == common.NAMESPACES["serving"]
    assert isvc["metadata"]["labels"]["app.kubernetes.io/component"] == "serving"
    p = isvc["spec"]["predictor"]
    assert p["serviceAccountName"] == common.SERVICE_ACCOUNTS["model_server"][1] == "model-server"
    assert (p["minReplicas"], p["maxReplicas"], p["canaryTrafficPercent"]) == (2, 6, 10)
    assert p["scaleMetric"] == "concurrency" and p["scaleTarget"] > 0
    assert p["nodeSelector"] == common.GPU_NODE_SELECTOR and p["tolerations"][0]["key"] == common.GPU_TAINT_KEY
    assert p["securityContext"]["runAsNonRoot"] is True
    m = p["model"]
    assert m["storageUri"] == CANDIDATE and m["modelFormat"]["name"] and m["runtime"]
    assert m["resources"]["limits"][common.GPU_RESOURCE] == "1"
    assert m["securityContext"]["readOnlyRootFilesystem"] is True
    # Keys come from the Secret as a mounted file (rotates in place), never as literal values.
    keys_volume = next(v for v in p["volumes"] if v.get("secret"))
    assert keys_volume["secret"]["secretName"] == common.SERVING_KEYS_SECRET
    assert any(vm["mountPath"] == KEYS_MOUNT and vm["readOnly"] for vm in m["volumeMounts"])
    assert {e["name"]: e["value"] for e in m["env"]}["LLAMA_PLATFORM_SERVING_KEYS_FILE"].startswith(KEYS_MOUNT)


def test_cpu_inference_service_has_no_gpu_placement():
    p = to_dict(inference_service(CHAMPION, shape=ServingShape(gpus=0)))["spec"]["predictor"]
    assert common.GPU_RESOURCE not in p["model"]["resources"]["limits"]
    assert "nodeSelector" not in p and "canaryTrafficPercent" not in p


@pytest.mark.parametrize("kwargs, message", [
    (dict(storage_uri="/local/dir"), "s3://"),
    (dict(storage_uri=CHAMPION, canary_traffic_percent=150), "0..100"),
    (dict(storage_uri=CHAMPION, shape=ServingShape(min_replicas=3, max_replicas=2)), "min <= max"),
])
def test_inference_service_refuses_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        inference_service(**kwargs)


def test_s3_credentials_reach_the_storage_initializer():
    secret = to_dict(model_server_s3_secret("http://minio.data.svc:9000"))
    ann = secret["metadata"]["annotations"]
    assert ann["serving.kserve.io/s3-endpoint"] == "minio.data.svc:9000"
    assert ann["serving.kserve.io/s3-usehttps"] == "0"
    assert "data" not in secret and "stringData" not in secret  # filled by External Secrets only
    sa = to_dict(model_server_service_account())
    assert (sa["metadata"]["namespace"], sa["metadata"]["name"]) == common.SERVICE_ACCOUNTS["model_server"]
    assert sa["secrets"] == [{"name": secret["metadata"]["name"]}]
    assert model_server_s3_secret("https://s3.example.com").metadata.annotations["serving.kserve.io/s3-usehttps"] == "1"
    with pytest.raises(ValueError, match="http"):
        model_server_s3_secret("minio:9000")


def test_seldon_objects_fit_the_crd_schemas():
    server, champion, candidate, experiment = seldon_objects(CHAMPION, CANDIDATE, candidate_percent=10)
    assert server["kind"] == "Server" and server["spec"]["serverConfig"] == "mlserver"
    assert champion["spec"]["server"] == candidate["spec"]["server"] == server["metadata"]["name"]
    assert set(champion["spec"]["requirements"]) <= set(server["spec"]["extraCapabilities"])
    assert server["spec"]["podSpec"]["serviceAccountName"] == "model-server"
    weights = {c["name"]: c["weight"] for c in experiment["spec"]["candidates"]}
    assert weights == {champion["metadata"]["name"]: 90, candidate["metadata"]["name"]: 10}
    assert experiment["spec"]["default"] == champion["metadata"]["name"]
    assert [o["kind"] for o in seldon_objects(CHAMPION, None)] == ["Server", "Model"]


def test_seldon_server_runs_on_cpu_unless_given_a_gpu_image():
    """The MLServer image ships CPU torch: the Server asks for no GPU (as both overlays), and a GPU
    shape with that image is refused instead of idling a GPU node."""
    from llama_platform.k8s.serving import MLSERVER_IMAGE, seldon_server

    pod = seldon_server()["spec"]["podSpec"]
    [c] = pod["containers"]
    assert common.GPU_RESOURCE not in c["resources"]["limits"] and not pod["nodeSelector"]
    with pytest.raises(ValueError, match="CPU torch"):
        seldon_server(ServingShape(gpus=1))
    gpu = seldon_server(ServingShape(gpus=1), image=MLSERVER_IMAGE.replace("mlserver-triage", "mlserver-triage-cuda"))
    [c] = gpu["spec"]["podSpec"]["containers"]
    assert c["resources"]["limits"][common.GPU_RESOURCE] == "1"
    assert gpu["spec"]["podSpec"]["nodeSelector"] == common.GPU_NODE_SELECTOR


def test_seldon_validation_refuses_unknown_fields_and_wrong_types():
    _, model, _, experiment = seldon_objects(CHAMPION, CANDIDATE)
    with pytest.raises(jsonschema.ValidationError, match="storageURI"):
        validate_seldon({**model, "spec": {**model["spec"], "storageURI": CHAMPION}})
    with pytest.raises(jsonschema.ValidationError):
        validate_seldon({**experiment, "spec": {"candidates": [{"name": "a", "weight": "ten"}]}})


# ---------------------------------------------------------------- the canary state machine


def test_canary_promotes_a_healthy_candidate():
    state = begin(CHAMPION, CANDIDATE, POLICY)
    assert (state.phase, state.traffic_percent) == ("canary", 10)
    assert to_dict(desired_inference_service(state))["spec"]["predictor"]["canaryTrafficPercent"] == 10
    waiting = step(state, CanaryMetrics(canary_requests=20, canary_errors=0, canary_p95_s=0.1), POLICY)
    assert waiting.phase == "canary" and "waiting" in waiting.reason
    done = step(waiting, CanaryMetrics(canary_requests=500, canary_errors=2, canary_p95_s=0.2, champion_p95_s=0.18),
                POLICY)
    assert (done.phase, done.traffic_percent) == ("promoted", 100)
    p = to_dict(desired_inference_service(done))["spec"]["predictor"]
    assert p["model"]["storageUri"] == CANDIDATE and p["canaryTrafficPercent"] == 100
    assert step(done, CanaryMetrics(1000, 900, 9.0), POLICY) == done  # finished states stay put


def test_canary_rolls_back_on_errors():
    state = step(begin(CHAMPION, CANDIDATE, POLICY), CanaryMetrics(canary_requests=400, canary_errors=12,
                                                                   canary_p95_s=0.1), POLICY)
    assert (state.phase, state.traffic_percent) == ("rolled_back", 0) and "error rate 3.00%" in state.reason
    p = to_dict(desired_inference_service(state))["spec"]["predictor"]
    assert p["model"]["storageUri"] == CHAMPION and "canaryTrafficPercent" not in p


@pytest.mark.parametrize("metrics, reason", [
    (CanaryMetrics(canary_requests=400, canary_errors=0, canary_p95_s=2.5), "p95 latency 2.500s > 1.000s"),
    (CanaryMetrics(canary_requests=400, canary_errors=0, canary_p95_s=0.5, champion_p95_s=0.2), "1.5x the champion"),
], ids=["absolute", "vs-champion"])
def test_canary_rolls_back_on_latency(metrics, reason):
    state = step(begin(CHAMPION, CANDIDATE, POLICY), metrics, POLICY)
    assert state.phase == "rolled_back" and reason in state.reason


def test_same_model_needs_no_canary():
    assert begin(CHAMPION, CHAMPION).phase == "stable"


def _drive(metrics: list[CanaryMetrics], max_checks: int = 5):
    """run_canary with the cluster replaced by lists: what it applied, and the metrics it is shown in turn."""
    applied, waits = [], []
    shown = iter(metrics)
    final = run_canary(begin(CHAMPION, CANDIDATE, POLICY), applied.append, lambda _s: next(shown), waits.append,
                       POLICY, interval_s=30, max_checks=max_checks)
    return final, applied, waits


def test_run_canary_applies_the_canary_then_the_promotion():
    final, applied, waits = _drive([CanaryMetrics(10, 0, 0.1), CanaryMetrics(300, 1, 0.2)])
    assert final.phase == "promoted" and waits == [30, 30]
    assert [a["spec"]["predictor"]["canaryTrafficPercent"] for a in applied] == [10, 100]
    assert {a["spec"]["predictor"]["model"]["storageUri"] for a in applied} == {CANDIDATE}


def test_run_canary_rolls_back_and_reapplies_the_champion():
    final, applied, _ = _drive([CanaryMetrics(300, 30, 0.2)])
    assert final.phase == "rolled_back"
    assert applied[-1]["spec"]["predictor"]["model"]["storageUri"] == CHAMPION


def test_run_canary_without_traffic_rolls_back_after_max_checks():
    final, applied, waits = _drive([CanaryMetrics(0, 0, 0.0)] * 3, max_checks=3)
    assert final.phase == "rolled_back" and "not judged after 3 checks" in final.reason and len(waits) == 3
    assert applied[-1]["spec"]["predictor"]["model"]["storageUri"] == CHAMPION


def test_canary_queries_select_the_revision_and_the_inference_routes():
    q = canary_queries("llama4-triage-predictor-00002", "serving", "5m")
    assert set(q) == {"requests", "errors", "p95"}
    # Every inference route label metrics.py gives (MLServer's generate included), and nothing else.
    from llama_platform.serving.metrics import route_of

    routes = set(re.search(r'route=~"([^"]+)"', q["requests"]).group(1).split("|"))
    assert routes == {"v1_predict", "v2_infer", "v2_generate", "openai_chat", "triage"}
    assert {route_of(p) for p in ("/v1/models/m:predict", "/v2/models/m/infer", "/v2/models/m/versions/1/infer",
                                  "/v2/models/m/generate", "/v2/models/m/generate_stream", "/v2/models/m/infer_stream",
                                  "/v1/chat/completions", "/v1/triage")} == routes
    assert {route_of(p) for p in ("/metrics", "/v1/models", "/v2/health/ready", "/v2/repository/index")} & routes == set()
    assert 'pod=~"llama4-triage-predictor-00002-deployment-.*"' in q["requests"]
    assert 'status=~"5.."' in q["errors"] and "[5m]" in q["errors"]
    assert q["p95"].startswith("histogram_quantile(0.95") and "triage_http_request_duration_seconds_bucket" in q["p95"]


def test_k8s_profile_deploys_through_kserve():
    from llama_platform.definitions import build_resources
    from llama_platform.resources.serving import KServeEndpointResource, LocalEndpointResource
    from llama_platform.settings import load_settings

    env = {"LLAMA_PLATFORM_PROFILE": "k8s", "LLAMA_PLATFORM_SERVING_URL": "https://triage.example.com",
           "LLAMA_PLATFORM_PROMETHEUS_URL": "http://prometheus.monitoring:9090", "MLFLOW_TRACKING_URI": "http://mlflow:5000"}
    endpoint = build_resources(load_settings(env))["endpoint"]
    assert isinstance(endpoint, KServeEndpointResource) and endpoint.url == "https://triage.example.com"
    assert isinstance(build_resources(load_settings({}))["endpoint"], LocalEndpointResource)


def test_objects_agree_with_the_deploy_manifests():
    """The InferenceService selects deploy/'s ServingRuntime, and the Seldon objects match its Server
    (and fit the Server CRD schema vendored for the deploy tests)."""
    from pathlib import Path

    import yaml

    from llama_platform_tests.deploy.crds import crd_errors

    base = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "base" / "serving"
    runtime = yaml.safe_load((base / "servingruntime.yaml").read_text())
    server = yaml.safe_load((base / "seldon-server.yaml").read_text())
    model = to_dict(inference_service(CHAMPION))["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert {"name": model["modelFormat"]["name"], "version": model["modelFormat"]["version"]} in [
        {k: f[k] for k in ("name", "version")} for f in runtime["spec"]["supportedModelFormats"]]
    assert model["protocolVersion"] in runtime["spec"]["protocolVersions"]
    ours, champion = seldon_objects(CHAMPION, None)
    assert crd_errors(ours) == []
    assert ours["metadata"]["name"] == server["metadata"]["name"] == champion["spec"]["server"]
    assert ours["metadata"]["namespace"] == server["metadata"]["namespace"]
    for field in ("serverConfig", "extraCapabilities"):
        assert ours["spec"][field] == server["spec"][field], field
    for field in ("serviceAccountName", "automountServiceAccountToken", "securityContext"):
        assert ours["spec"]["podSpec"][field] == server["spec"]["podSpec"][field], field
    assert set(champion["spec"]["requirements"]) <= set(server["spec"]["extraCapabilities"])
