"""Serving objects for the k8s profile: a KServe InferenceService with a canary rollout, and Seldon
Core 2 Model/Server/Experiment objects running the same predictor on MLServer.

InferenceService objects are the `kserve` package's SDK models (field names checked by the SDK);
Seldon Core 2 ships no Python SDK, so its objects are dicts validated against `SELDON_SCHEMAS`, the
subset of the mlops.seldon.io/v1alpha1 CRDs' openAPIV3Schema we use (unknown fields refused, as
`kubectl --validate=strict` would). The canary state machine is pure functions over frozen
dataclasses: the asset that drives it reads metrics, calls `step`, and applies `inference_service`.

Models reach the pods from MinIO via `storageUri` (s3://...): KServe's storage initializer takes the
credentials from the Secret the `model-server` ServiceAccount lists, and the endpoint from that
Secret's `serving.kserve.io/s3-*` annotations.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable
from urllib.parse import urlparse

import jsonschema
from kserve import (
    V1beta1InferenceService,
    V1beta1InferenceServiceSpec,
    V1beta1ModelFormat,
    V1beta1ModelSpec,
    V1beta1PredictorSpec,
)
from kubernetes.client import (
    ApiClient,
    V1EnvVar,
    V1ObjectMeta,
    V1ObjectReference,
    V1ResourceRequirements,
    V1Secret,
    V1SecretVolumeSource,
    V1ServiceAccount,
    V1Volume,
    V1VolumeMount,
)

from llama_platform.k8s.common import (
    GPU_NODE_SELECTOR,
    GPU_RESOURCE,
    S3_SECRET,
    SERVICE_ACCOUNTS,
    SERVING_KEYS_SECRET,
    container_security_context,
    gpu_tolerations,
    labels,
    pod_security_context,
    scratch_volumes,
)

MODEL_NAME = "llama4-triage"
# Names shared with deploy/k8s/base/serving (a test checks they agree).
MODEL_FORMAT = ("llama-platform-triage", "1")  # (name, version) the ServingRuntime supports
SERVING_RUNTIME = "llama-platform-predictor"  # the ServingRuntime running llama_platform.serving.server
SELDON_SERVER = "llama-platform-mlserver"
SELDON_SERVER_CONFIG = "mlserver"  # Seldon Core 2's stock MLServer ServerConfig
SELDON_REQUIREMENT = "llama-platform-triage"  # capability the Server offers and the Models require
# MLServer with llama_platform and the model stack installed (the stock MLServer image has no torch):
# deploy/docker/mlserver.Dockerfile, whose entrypoint is MLSERVER_MODULE (MLServer behind our keys).
MLSERVER_IMAGE = "ghcr.io/llama-platform/mlserver-triage:0.1.0"
MLSERVER_MODULE = "llama_platform.serving.mlserver_app"
MAX_BODY_BYTES = 1 << 20  # the KServe server's default (--max-body-bytes), for both runtimes
KEYS_MOUNT = "/etc/llama-platform/serving-keys"
KEYS_FILE = "keys.json"  # the key in SERVING_KEYS_SECRET holding {"keys": [...]} (hashes only)
# Routes whose requests the canary counts (serving/metrics.py route labels).
INFERENCE_ROUTES = "v1_predict|v2_infer|v2_generate|openai_chat|triage"

# What Prometheus' PodMonitors (deploy/k8s/base/monitoring) select and scrape; a test checks they agree.
# KServe labels every predictor pod with its InferenceService's name; Knative names the user
# container's port `user-port` on every revision pod, whatever the ServingRuntime calls it.
PREDICTOR_POD_LABEL = ("serving.kserve.io/inferenceservice", MODEL_NAME)
# Seldon Core 2 labels a Server's pods with the Server's name.
SELDON_POD_LABEL = ("seldon-server-name", SELDON_SERVER)
MLSERVER_METRICS_PORT = 8082  # MLServer's metrics server (MLSERVER_METRICS_PORT), declared on the Server
METRICS_PORT_NAMES = {"kserve": "user-port", "mlserver": "server-metrics"}


def to_dict(obj: Any) -> dict:
    """An SDK model as the camelCase dict kubectl would send."""
    return ApiClient().sanitize_for_serialization(obj)


# ---------------------------------------------------------------- credentials


def s3_annotations(endpoint_url: str, region: str = "us-east-1") -> dict[str, str]:
    """KServe's storage initializer reads the S3 endpoint from these annotations on the Secret."""
    u = urlparse(endpoint_url)
    if u.scheme not in ("http", "https") or not u.netloc:
        raise ValueError(f"S3 endpoint must be an http(s) URL, got {endpoint_url!r}")
    https = u.scheme == "https"
    return {
        "serving.kserve.io/s3-endpoint": u.netloc,
        "serving.kserve.io/s3-usehttps": "1" if https else "0",
        "serving.kserve.io/s3-verifyssl": "1" if https else "0",
        "serving.kserve.io/s3-region": region,
    }


def model_server_s3_secret(endpoint_url: str, region: str = "us-east-1") -> V1Secret:
    """The serving namespace's copy of the S3 Secret: annotations only. Its data (AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY) is filled by External Secrets, never written here."""
    ns, _ = SERVICE_ACCOUNTS["model_server"]
    return V1Secret(api_version="v1", kind="Secret", type="Opaque", metadata=V1ObjectMeta(
        name=S3_SECRET, namespace=ns, labels=labels("serving"), annotations=s3_annotations(endpoint_url, region)))


def model_server_service_account() -> V1ServiceAccount:
    ns, name = SERVICE_ACCOUNTS["model_server"]
    return V1ServiceAccount(api_version="v1", kind="ServiceAccount",
                            metadata=V1ObjectMeta(name=name, namespace=ns, labels=labels("serving")),
                            secrets=[V1ObjectReference(name=S3_SECRET)], automount_service_account_token=False)


# ---------------------------------------------------------------- KServe


@dataclass(frozen=True)
class ServingShape:
    """Replicas, autoscaling and resources of the predictor."""

    min_replicas: int = 1
    max_replicas: int = 4
    scale_metric: str = "concurrency"  # Knative KPA: in-flight requests per pod
    scale_target: int = 16  # about two full micro-batches in flight per pod
    gpus: int = 1
    cpu: str = "4"
    memory: str = "24Gi"
    max_batch: int = 32
    max_wait_ms: float = 0.0  # batches fill while the GPU is busy (serving/triage.py MicroBatcher)


def inference_service(storage_uri: str, canary_traffic_percent: int | None = None,
                      shape: ServingShape = ServingShape(), name: str = MODEL_NAME,
                      model_source: str = "") -> V1beta1InferenceService:
    """The InferenceService serving `storage_uri` (an s3:// model directory on MinIO).

    With `canary_traffic_percent` set, KServe (serverless mode) sends that share to the revision
    this spec creates and the rest to the last fully rolled-out one (the champion).
    """
    if not storage_uri.startswith("s3://"):
        raise ValueError(f"storage_uri must be an s3:// URI on the object store, got {storage_uri!r}")
    if canary_traffic_percent is not None and not 0 <= canary_traffic_percent <= 100:
        raise ValueError(f"canary_traffic_percent must be 0..100, got {canary_traffic_percent}")
    if shape.min_replicas < 1 or shape.max_replicas < shape.min_replicas:
        raise ValueError(f"replicas must satisfy 1 <= min <= max, got {shape.min_replicas}..{shape.max_replicas}")
    ns, sa = SERVICE_ACCOUNTS["model_server"]
    volumes, mounts = scratch_volumes("10Gi")
    volumes.append(V1Volume(name="serving-keys", secret=V1SecretVolumeSource(secret_name=SERVING_KEYS_SECRET)))
    mounts.append(V1VolumeMount(name="serving-keys", mount_path=KEYS_MOUNT, read_only=True))
    resources = {"cpu": shape.cpu, "memory": shape.memory}
    if shape.gpus:
        resources[GPU_RESOURCE] = str(shape.gpus)
    model = V1beta1ModelSpec(
        model_format=V1beta1ModelFormat(name=MODEL_FORMAT[0], version=MODEL_FORMAT[1]),
        runtime=SERVING_RUNTIME,
        storage_uri=storage_uri,
        protocol_version="v2",
        # Appended to the ServingRuntime's args (--model-dir, --name, --host, --http-port).
        args=[f"--max-batch={shape.max_batch}", f"--max-wait-ms={shape.max_wait_ms}"],
        env=[V1EnvVar(name="LLAMA_PLATFORM_SERVING_KEYS_FILE", value=f"{KEYS_MOUNT}/{KEYS_FILE}")],
        resources=V1ResourceRequirements(requests=dict(resources), limits=dict(resources)),
        security_context=container_security_context(),
        volume_mounts=mounts,
    )
    predictor = V1beta1PredictorSpec(
        model=model,
        service_account_name=sa,
        min_replicas=shape.min_replicas,
        max_replicas=shape.max_replicas,
        scale_metric=shape.scale_metric,
        scale_target=shape.scale_target,
        canary_traffic_percent=canary_traffic_percent,
        security_context=pod_security_context(),
        node_selector=dict(GPU_NODE_SELECTOR) if shape.gpus else None,
        tolerations=gpu_tolerations() if shape.gpus else None,
        volumes=volumes,
    )
    # Canary traffic splitting needs Knative. No prometheus.io/* annotations: kube-prometheus-stack
    # does not read them; the PodMonitor in deploy/k8s/base/monitoring scrapes the predictor pods.
    annotations = {"serving.kserve.io/deploymentMode": "Serverless"}
    if model_source:
        annotations["llama-platform/model-source"] = model_source
    return V1beta1InferenceService(
        api_version="serving.kserve.io/v1beta1",
        kind="InferenceService",
        metadata=V1ObjectMeta(name=name, namespace=ns, labels=labels("serving"), annotations=annotations),
        spec=V1beta1InferenceServiceSpec(predictor=predictor),
    )


# ---------------------------------------------------------------- canary state machine


@dataclass(frozen=True)
class CanaryPolicy:
    canary_percent: int = 10
    min_requests: int = 200  # the canary must have answered this many before it is judged
    max_error_rate: float = 0.01  # 5xx share of the canary's requests
    max_p95_latency_s: float = 1.0
    max_latency_ratio: float = 1.5  # canary p95 / champion p95


@dataclass(frozen=True)
class CanaryMetrics:
    """What Prometheus says about the canary (and the champion, for latency) since the canary began."""

    canary_requests: int
    canary_errors: int
    canary_p95_s: float
    champion_p95_s: float | None = None

    @property
    def error_rate(self) -> float:
        return self.canary_errors / self.canary_requests if self.canary_requests else 0.0


@dataclass(frozen=True)
class CanaryState:
    phase: str  # "stable" (champion only), "canary", "promoted", "rolled_back"
    champion_uri: str
    candidate_uri: str | None = None
    traffic_percent: int = 0  # the candidate's share
    reason: str = ""

    @property
    def done(self) -> bool:
        return self.phase in ("stable", "promoted", "rolled_back")


def begin(champion_uri: str, candidate_uri: str, policy: CanaryPolicy = CanaryPolicy()) -> CanaryState:
    if candidate_uri == champion_uri:
        return CanaryState("stable", champion_uri, reason="candidate is the champion: nothing to roll out")
    return CanaryState("canary", champion_uri, candidate_uri, policy.canary_percent,
                       f"{policy.canary_percent}% of traffic to the candidate")


def step(state: CanaryState, metrics: CanaryMetrics, policy: CanaryPolicy = CanaryPolicy()) -> CanaryState:
    """Judge the canary: roll back on errors or latency, promote when healthy, else keep waiting."""
    if state.phase != "canary":
        return state
    if metrics.canary_requests < policy.min_requests:
        return replace(state, reason=f"waiting: {metrics.canary_requests}/{policy.min_requests} canary requests")
    if metrics.error_rate > policy.max_error_rate:
        return replace(state, phase="rolled_back", traffic_percent=0,
                       reason=f"error rate {metrics.error_rate:.2%} > {policy.max_error_rate:.2%}")
    if metrics.canary_p95_s > policy.max_p95_latency_s:
        return replace(state, phase="rolled_back", traffic_percent=0,
                       reason=f"p95 latency {metrics.canary_p95_s:.3f}s > {policy.max_p95_latency_s:.3f}s")
    if metrics.champion_p95_s and metrics.canary_p95_s > policy.max_latency_ratio * metrics.champion_p95_s:
        return replace(state, phase="rolled_back", traffic_percent=0,
                       reason=f"p95 latency {metrics.canary_p95_s:.3f}s > {policy.max_latency_ratio}x "
                              f"the champion's {metrics.champion_p95_s:.3f}s")
    return replace(state, phase="promoted", traffic_percent=100,
                   reason=f"healthy: error rate {metrics.error_rate:.2%}, p95 {metrics.canary_p95_s:.3f}s")


def desired_inference_service(state: CanaryState, shape: ServingShape = ServingShape()) -> V1beta1InferenceService:
    """The InferenceService for a canary state.

    canary: the candidate's spec at canaryTrafficPercent (the champion keeps the rest as the last
    rolled-out revision); promoted: the candidate at 100%; rolled back: the champion's spec again
    (traffic 100% to it), stable: the champion.
    """
    if state.phase == "canary":
        return inference_service(state.candidate_uri, state.traffic_percent, shape, model_source="candidate (canary)")
    if state.phase == "promoted":
        return inference_service(state.candidate_uri, 100, shape, model_source="candidate (promoted)")
    return inference_service(state.champion_uri, None, shape, model_source="champion")


def run_canary(state: CanaryState, apply: Callable[[dict], None], observe: Callable[[CanaryState], CanaryMetrics],
               wait: Callable[[float], None], policy: CanaryPolicy = CanaryPolicy(),
               shape: ServingShape = ServingShape(), interval_s: float = 60.0, max_checks: int = 30,
               log: Callable[[str], None] = lambda _m: None) -> CanaryState:
    """Drive a rollout to its end: apply the canary, judge it every `interval_s`, apply the outcome.
    A canary that never gets enough traffic to be judged is rolled back (the safe side)."""
    apply(to_dict(desired_inference_service(state, shape)))
    log(f"{state.phase}: {state.reason}")
    checks = 0
    while not state.done:
        if checks >= max_checks:
            state = replace(state, phase="rolled_back", traffic_percent=0,
                            reason=f"not judged after {checks} checks ({state.reason}): rolled back")
            break
        wait(interval_s)
        state = step(state, observe(state), policy)
        checks += 1
        log(f"check {checks}: {state.phase}: {state.reason}")
    apply(to_dict(desired_inference_service(state, shape)))
    return state


def canary_queries(revision: str, namespace: str, window: str = "10m") -> dict[str, str]:
    """PromQL for the canary's figures from the predictor's own metrics (serving/metrics.py), by the
    Knative revision its pods belong to (KServe's status names the canary revision). Prometheus
    scrapes them through the PodMonitor in deploy/k8s/base/monitoring (PREDICTOR_POD_LABEL,
    METRICS_PORT_NAMES), whose target labels give the `namespace` and `pod` used here."""
    sel = f'namespace="{namespace}",pod=~"{revision}-deployment-.*",route=~"{INFERENCE_ROUTES}"'
    return {
        "requests": f"sum(increase(triage_http_requests_total{{{sel}}}[{window}]))",
        "errors": f'sum(increase(triage_http_requests_total{{{sel},status=~"5.."}}[{window}]))',
        "p95": f"histogram_quantile(0.95, sum by (le) (rate(triage_http_request_duration_seconds_bucket{{{sel}}}[{window}])))",
    }


# ---------------------------------------------------------------- Seldon Core 2

SELDON_API = "mlops.seldon.io/v1alpha1"
_INT = {"type": "integer", "minimum": 0}
_META = {"type": "object", "required": ["name", "namespace"],
         "properties": {"name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                        "namespace": {"type": "string"}, "labels": {"type": "object"},
                        "annotations": {"type": "object"}}}


def _kind(kind: str, spec: dict) -> dict:
    return {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
            "properties": {"apiVersion": {"const": SELDON_API}, "kind": {"const": kind}, "metadata": _META,
                           "spec": spec}}


# The parts of the mlops.seldon.io/v1alpha1 CRD schemas (Seldon Core 2) these objects use.
SELDON_SCHEMAS = {
    "Model": _kind("Model", {
        "type": "object", "required": ["storageUri"], "additionalProperties": False,
        "properties": {"storageUri": {"type": "string"}, "artifactVersion": _INT, "schemaUri": {"type": "string"},
                       "secretName": {"type": "string"}, "requirements": {"type": "array", "items": {"type": "string"}},
                       "memory": {"type": ["string", "integer"]}, "server": {"type": "string"},
                       "replicas": _INT, "minReplicas": _INT, "maxReplicas": _INT,
                       "preloaded": {"type": "boolean"}, "dedicated": {"type": "boolean"}}}),
    "Server": _kind("Server", {
        "type": "object", "required": ["serverConfig"], "additionalProperties": False,
        "properties": {"serverConfig": {"type": "string"}, "replicas": _INT, "minReplicas": _INT, "maxReplicas": _INT,
                       "extraCapabilities": {"type": "array", "items": {"type": "string"}},
                       "capabilities": {"type": "array", "items": {"type": "string"}},
                       "podSpec": {"type": "object"}}}),
    "Experiment": _kind("Experiment", {
        "type": "object", "required": ["candidates"], "additionalProperties": False,
        "properties": {"default": {"type": "string"}, "resourceType": {"enum": ["model", "pipeline"]},
                       "candidates": {"type": "array", "minItems": 1, "items": {
                           "type": "object", "required": ["name", "weight"], "additionalProperties": False,
                           "properties": {"name": {"type": "string"}, "weight": _INT}}},
                       "mirror": {"type": "object", "required": ["name", "percent"],
                                  "properties": {"name": {"type": "string"}, "percent": _INT}}}}),
}


def validate_seldon(obj: dict) -> dict:
    """Raise jsonschema.ValidationError if `obj` does not fit its kind's CRD schema; return it."""
    schema = SELDON_SCHEMAS.get(obj.get("kind"))
    if schema is None:
        raise ValueError(f"not a Seldon Core 2 kind we build: {obj.get('kind')!r}")
    jsonschema.validate(obj, schema)
    return obj


def mlserver_model_settings(name: str, parameters: dict | None = None) -> dict:
    """The model-settings.json MLServer reads next to a model (Seldon Core 2 loads it from the Model's
    storageUri folder): our runtime, MLServer's own adaptive batching off (the shared batcher does it),
    and by default the model is the folder holding this file (`uri` "." is resolved against it).

    Seldon's agent rewrites this file keeping only name, implementation and parameters' uri and
    version: `parameters.extra` does not survive there, so the runtime's defaults (the KServe
    server's) apply on Seldon, and the body limit comes from the Server's args."""
    return {"name": name, "implementation": "llama_platform.serving.mlserver_runtime.TriageRuntime",
            "max_batch_size": 0, "parameters": {"uri": "."} if parameters is None else parameters}


# The Seldon Server's shape: CPU. MLSERVER_IMAGE ships CPU torch (deploy/docker/mlserver.Dockerfile),
# so a GPU would sit idle; both overlays run the Server on CPU. Serving Seldon on GPUs takes an image
# built with CUDA torch, passed as `image` with a shape that asks for GPUs (and the same patch in
# the prod overlay).
SELDON_SHAPE = ServingShape(gpus=0)


def seldon_server(shape: ServingShape = SELDON_SHAPE, image: str = MLSERVER_IMAGE) -> dict:
    """An MLServer Server offering the triage runtime (our image: llama_platform installed)."""
    if shape.gpus and image == MLSERVER_IMAGE:
        raise ValueError(f"{MLSERVER_IMAGE} ships CPU torch: GPUs need an MLServer image built with CUDA torch "
                         "(pass image=...)")
    ns, sa = SERVICE_ACCOUNTS["model_server"]
    volumes, mounts = scratch_volumes("10Gi")
    volumes.append(V1Volume(name="serving-keys", secret=V1SecretVolumeSource(secret_name=SERVING_KEYS_SECRET)))
    mounts.append(V1VolumeMount(name="serving-keys", mount_path=KEYS_MOUNT, read_only=True))
    api = ApiClient()
    pod_spec = {
        "serviceAccountName": sa,
        "automountServiceAccountToken": False,
        "securityContext": api.sanitize_for_serialization(pod_security_context()),
        "nodeSelector": dict(GPU_NODE_SELECTOR) if shape.gpus else {},
        "tolerations": api.sanitize_for_serialization(gpu_tolerations()) if shape.gpus else [],
        "volumes": api.sanitize_for_serialization(volumes),
        # Seldon merges this container into the Server's pod by name.
        "containers": [{
            "name": "mlserver",
            "image": image,
            # The image's entrypoint (MLSERVER_MODULE) takes these; the ServerConfig sets MLSERVER_MODELS_DIR.
            "args": [f"--max-body-bytes={MAX_BODY_BYTES}", "start", "$(MLSERVER_MODELS_DIR)"],
            # Keys as on KServe: the hashed, scoped keys file from the mounted Secret (re-read on change).
            "env": [
                {"name": "LLAMA_PLATFORM_SERVING_KEYS_FILE", "value": f"{KEYS_MOUNT}/{KEYS_FILE}"},
                # The metrics server's port, declared below by name for the PodMonitor (the stock
                # ServerConfig declares only the HTTP and gRPC ports).
                {"name": "MLSERVER_METRICS_PORT", "value": str(MLSERVER_METRICS_PORT)},
                # The stock ServerConfig runs one worker process; our custom handlers need the request in-process.
                {"name": "MLSERVER_PARALLEL_WORKERS", "value": "0"},
                # gRPC's body limit (REST's is the entrypoint's --max-body-bytes).
                {"name": "MLSERVER_GRPC_MAX_MESSAGE_LENGTH", "value": str(MAX_BODY_BYTES)},
            ],
            # Appended to the ServerConfig's ports (Seldon merges containers by name, appending lists).
            "ports": [{"name": METRICS_PORT_NAMES["mlserver"], "containerPort": MLSERVER_METRICS_PORT,
                       "protocol": "TCP"}],
            "securityContext": api.sanitize_for_serialization(container_security_context()),
            "volumeMounts": api.sanitize_for_serialization(mounts),
            "resources": {"requests": {"cpu": shape.cpu, "memory": shape.memory,
                                       **({GPU_RESOURCE: str(shape.gpus)} if shape.gpus else {})},
                          "limits": {"cpu": shape.cpu, "memory": shape.memory,
                                     **({GPU_RESOURCE: str(shape.gpus)} if shape.gpus else {})}},
        }],
    }
    return validate_seldon({
        "apiVersion": SELDON_API, "kind": "Server",
        "metadata": {"name": SELDON_SERVER, "namespace": ns, "labels": labels("serving")},
        "spec": {"serverConfig": SELDON_SERVER_CONFIG, "extraCapabilities": [SELDON_REQUIREMENT],
                 "replicas": shape.min_replicas, "minReplicas": shape.min_replicas,
                 "maxReplicas": shape.max_replicas, "podSpec": pod_spec},
    })


def seldon_model(name: str, storage_uri: str, shape: ServingShape = ServingShape()) -> dict:
    """A Model scheduled on the triage Server; the model dir's model-settings.json names the runtime."""
    if not storage_uri.startswith("s3://"):
        raise ValueError(f"storage_uri must be an s3:// URI on the object store, got {storage_uri!r}")
    ns, _ = SERVICE_ACCOUNTS["model_server"]
    return validate_seldon({
        "apiVersion": SELDON_API, "kind": "Model",
        "metadata": {"name": name, "namespace": ns, "labels": labels("serving")},
        "spec": {"storageUri": storage_uri, "requirements": [SELDON_REQUIREMENT], "server": SELDON_SERVER,
                 "secretName": S3_SECRET, "memory": shape.memory, "minReplicas": shape.min_replicas,
                 "maxReplicas": shape.max_replicas},
    })


def seldon_experiment(champion: str, candidate: str, candidate_percent: int = 10,
                      name: str = f"{MODEL_NAME}-rollout") -> dict:
    """Split traffic between the champion and candidate Models; the champion is the default."""
    if not 0 < candidate_percent < 100:
        raise ValueError(f"candidate_percent must be 1..99, got {candidate_percent}")
    ns, _ = SERVICE_ACCOUNTS["model_server"]
    return validate_seldon({
        "apiVersion": SELDON_API, "kind": "Experiment",
        "metadata": {"name": name, "namespace": ns, "labels": labels("serving")},
        "spec": {"default": champion, "resourceType": "model", "candidates": [
            {"name": champion, "weight": 100 - candidate_percent}, {"name": candidate, "weight": candidate_percent}]},
    })


def seldon_objects(champion_uri: str, candidate_uri: str | None, candidate_percent: int = 10,
                   shape: ServingShape = SELDON_SHAPE) -> list[dict]:
    """Server + champion Model, and with a candidate: its Model and the Experiment splitting traffic."""
    objs = [seldon_server(shape), seldon_model(f"{MODEL_NAME}-champion", champion_uri, shape)]
    if candidate_uri:
        objs.append(seldon_model(f"{MODEL_NAME}-candidate", candidate_uri, shape))
        objs.append(seldon_experiment(f"{MODEL_NAME}-champion", f"{MODEL_NAME}-candidate", candidate_percent))
    return objs

