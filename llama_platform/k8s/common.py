"""What every Kubernetes object of the platform shares: namespaces, service accounts, labels,
security contexts, GPU placement and the Secrets that carry credentials.

The objects built at run time (training pods, TrainJobs, InferenceServices, Seldon objects) and
the manifests in deploy/k8s use these same values; a test renders both and checks they agree.
Built with the official `kubernetes` client models so the field names are checked by the client.
"""

from __future__ import annotations

from kubernetes.client import (
    V1Capabilities,
    V1ConfigMapEnvSource,
    V1ConfigMapKeySelector,
    V1EmptyDirVolumeSource,
    V1EnvFromSource,
    V1EnvVar,
    V1EnvVarSource,
    V1PodSecurityContext,
    V1SeccompProfile,
    V1SecretEnvSource,
    V1SecretKeySelector,
    V1SecurityContext,
    V1Toleration,
    V1Volume,
    V1VolumeMount,
)

PART_OF = "llama-platform"

# One namespace per trust zone (deploy/k8s/base/namespaces/namespaces.yaml).
NAMESPACES = {
    "dagster": "dagster",  # webserver, daemon, user code, run pods
    "data": "data",  # MinIO, Postgres, MLflow, Redis, Feast feature server
    "training": "training",  # training pods and TrainJobs
    "serving": "serving",  # InferenceServices, Seldon Servers/Models
    "monitoring": "monitoring",  # Prometheus scraping
}

# A ServiceAccount per component: (namespace, name).
SERVICE_ACCOUNTS = {
    "dagster": (NAMESPACES["dagster"], "dagster"),  # webserver + daemon (the Helm chart's)
    "dagster_run": (NAMESPACES["dagster"], "dagster-run"),  # run/step pods: launch training + serving
    "trainer": (NAMESPACES["training"], "trainer"),  # training pods: read model + data, write checkpoints
    "model_server": (NAMESPACES["serving"], "model-server"),  # predictors: read their model only
    "mlflow": (NAMESPACES["data"], "mlflow"),
    "feast": (NAMESPACES["data"], "feast"),
}

# Secrets (created by External Secrets in the cluster; never in git). Keys are the env var names.
S3_SECRET = "llama-platform-s3"  # AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
FORGE_SECRET = "llama-platform-forge-tokens"  # GITHUB_TOKEN, GITEE_TOKEN
SERVING_KEYS_SECRET = "llama-platform-serving-keys"  # keys.json: hashed, scoped API keys and service tokens
# dagster: LLAMA_PLATFORM_API_KEY, the endpoint's client key (`predict`), for deployed_endpoint's smoke test.
SERVING_CLIENT_SECRET = "llama-platform-serving-client"
# monitoring: `token`, the `metrics`-scope service token Prometheus' PodMonitors scrape the predictors with.
PROMETHEUS_TOKEN_SECRET = "llama-platform-prometheus-token"
MLFLOW_DB_SECRET = "mlflow-postgres"
DAGSTER_DB_SECRET = "dagster-postgresql-secret"  # the Dagster Helm chart's default name
S3_SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")

# Non-secret settings every platform pod reads (a ConfigMap per namespace that runs our code).
# Keys are env var names: boto3 and MLflow read them directly.
CONFIG_MAP = "llama-platform-config"
CONFIG_MAP_KEYS = ("AWS_ENDPOINT_URL", "AWS_REGION", "MLFLOW_TRACKING_URI", "MLFLOW_S3_ENDPOINT_URL")
CONFIG_MAP_OPTIONAL_KEYS = ("AWS_REGION", "MLFLOW_S3_ENDPOINT_URL")

# The label dagster-k8s puts on run/step pods; our training pods and TrainJobs carry it too.
DAGSTER_RUN_ID_LABEL = "dagster/run-id"

DEFAULT_IMAGES = {
    "platform": "ghcr.io/llama-platform/platform:0.1.0",
    "trainer": "ghcr.io/llama-platform/trainer:0.1.0",
}

# The non-root user baked into both images (deploy/docker).
RUN_AS_USER = 10001
RUN_AS_GROUP = 10001

GPU_RESOURCE = "nvidia.com/gpu"
# Set by NVIDIA GPU feature discovery on GPU nodes; our GPU node pools also carry the taint below.
GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}
GPU_TAINT_KEY = "nvidia.com/gpu"


def labels(component: str, managed_by: str = "dagster", **extra: str) -> dict[str, str]:
    """The recommended app.kubernetes.io labels; `component` is e.g. training, serving, mlflow."""
    base = {
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": managed_by,
    }
    return {**base, **extra}


def pod_security_context() -> V1PodSecurityContext:
    """Pod Security Standard "restricted": non-root, RuntimeDefault seccomp."""
    return V1PodSecurityContext(
        run_as_non_root=True,
        run_as_user=RUN_AS_USER,
        run_as_group=RUN_AS_GROUP,
        fs_group=RUN_AS_GROUP,
        seccomp_profile=V1SeccompProfile(type="RuntimeDefault"),
    )


def container_security_context() -> V1SecurityContext:
    """Restricted container: no privilege escalation, no capabilities, read-only root filesystem."""
    return V1SecurityContext(
        allow_privilege_escalation=False,
        read_only_root_filesystem=True,
        run_as_non_root=True,
        capabilities=V1Capabilities(drop=["ALL"]),
        seccomp_profile=V1SeccompProfile(type="RuntimeDefault"),
    )


def gpu_tolerations() -> list[V1Toleration]:
    return [V1Toleration(key=GPU_TAINT_KEY, operator="Exists", effect="NoSchedule")]


def scratch_volumes(size_limit: str = "20Gi") -> tuple[list[V1Volume], list[V1VolumeMount]]:
    """Writable places a read-only root filesystem still needs: /tmp and $HOME (caches)."""
    volumes = [
        V1Volume(name="tmp", empty_dir=V1EmptyDirVolumeSource(size_limit=size_limit)),
        V1Volume(name="home", empty_dir=V1EmptyDirVolumeSource(size_limit=size_limit)),
    ]
    mounts = [V1VolumeMount(name="tmp", mount_path="/tmp"), V1VolumeMount(name="home", mount_path="/home/app")]
    return volumes, mounts


def secret_env(*secret_names: str) -> list[V1EnvFromSource]:
    """Env vars from Secrets (values never appear in the pod spec)."""
    return [V1EnvFromSource(secret_ref=V1SecretEnvSource(name=name)) for name in secret_names]


def config_map_env(*config_map_names: str) -> list[V1EnvFromSource]:
    """Env vars from ConfigMaps (non-secret settings such as endpoints)."""
    return [V1EnvFromSource(config_map_ref=V1ConfigMapEnvSource(name=name)) for name in config_map_names]


def secret_key_env(secret_name: str, keys: tuple[str, ...]) -> list[V1EnvVar]:
    """One env var per Secret key, for APIs that take `env` but not `envFrom` (TrainJob's trainer)."""
    return [
        V1EnvVar(name=key, value_from=V1EnvVarSource(secret_key_ref=V1SecretKeySelector(name=secret_name, key=key)))
        for key in keys
    ]


def config_map_key_env(config_map_name: str, keys: tuple[str, ...], optional: tuple[str, ...] = ()) -> list[V1EnvVar]:
    """One env var per ConfigMap key. A missing required key stops the pod from starting
    (CreateContainerConfigError, which the launcher reports) instead of a confusing default."""
    return [
        V1EnvVar(
            name=key,
            value_from=V1EnvVarSource(
                config_map_key_ref=V1ConfigMapKeySelector(name=config_map_name, key=key, optional=key in optional or None)
            ),
        )
        for key in keys
    ]


def shm_volume(size_limit: str = "16Gi") -> tuple[V1Volume, V1VolumeMount]:
    """A memory-backed /dev/shm: the runtime's default is 64 MiB, too small for PyTorch dataloader
    workers and NCCL's shared-memory transport."""
    volume = V1Volume(name="dshm", empty_dir=V1EmptyDirVolumeSource(medium="Memory", size_limit=size_limit))
    return volume, V1VolumeMount(name="dshm", mount_path="/dev/shm")
