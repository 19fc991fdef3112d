"""The Kubernetes objects a fine-tune runs as (k8s profile).

One node: a GPU pod that `dagster_k8s.PipesK8sClient` creates (`pipes_pod_request` gives its
`run()` arguments; Pipes adds its env vars and the pod name). Several nodes: a Kubeflow Trainer v2
`TrainJob` on the `torch-distributed` ClusterTrainingRuntime, built with the SDK's models
(`kubeflow_trainer_api`, the API package the `kubeflow` SDK uses). Both run the one entrypoint,
`python -m llama_platform.training.train --config s3://...`; the config, data and base model come
from the object store, whose endpoint and keys reach the pod from a ConfigMap and a Secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, TypeVar

from kubeflow_trainer_api import models as kt
from kubernetes.client import (
    ApiClient,
    V1Container,
    V1EnvVar,
    V1ObjectMeta,
    V1PodSpec,
    V1PolicyRule,
    V1ResourceRequirements,
)

from llama_platform.k8s.common import (
    CONFIG_MAP,
    CONFIG_MAP_KEYS,
    CONFIG_MAP_OPTIONAL_KEYS,
    DAGSTER_RUN_ID_LABEL,
    GPU_NODE_SELECTOR,
    GPU_RESOURCE,
    NAMESPACES,
    S3_SECRET,
    S3_SECRET_KEYS,
    SERVICE_ACCOUNTS,
    config_map_env,
    config_map_key_env,
    container_security_context,
    gpu_tolerations,
    labels,
    pod_security_context,
    scratch_volumes,
    secret_env,
    secret_key_env,
    shm_volume,
)

TRAIN_MODULE = "llama_platform.training.train"
TRAINER_CONTAINER = "trainer"  # our pod's container (the first one: Pipes talks to it)
# The replicated job and container the torch-distributed runtime names "node"; rank 0 is index 0.
TRAINJOB_NODE = "node"
TRAINJOB_API_VERSION = "trainer.kubeflow.org/v1alpha1"
TRAINJOB_GROUP, TRAINJOB_VERSION = TRAINJOB_API_VERSION.split("/")
TRAINJOB_PLURAL = "trainjobs"
DEFAULT_RUNTIME = "torch-distributed"
# Our entry in TrainJob.spec.runtimePatches (each manager owns one entry; Kueue adds its own).
PATCH_MANAGER = "llama-platform.io/dagster"
# Labels Kubeflow Trainer (through JobSet and Job) puts on a TrainJob's pods: how rank 0 is found.
JOBSET_NAME_LABEL = "jobset.sigs.k8s.io/jobset-name"
JOBSET_RJOB_LABEL = "jobset.sigs.k8s.io/replicatedjob-name"
JOB_INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"  # set by GPU feature discovery, e.g. NVIDIA-H100-80GB-HBM3
HOME = "/home/app"  # the trainer image's HOME (deploy/docker/trainer.Dockerfile), an emptyDir here


@dataclass(frozen=True)
class NodeShape:
    """What one training node asks for. Requests equal limits, so the pod is Guaranteed QoS: the
    last to be evicted when a node runs short of memory."""

    gpus: int = 1
    gpu_product: str | None = None  # pin a GPU model; None: any node with GPUs
    cpu: str = "8"
    memory: str = "64Gi"
    shm_size: str = "16Gi"  # /dev/shm (memory-backed; counts against the memory limit)
    scratch_size: str = "100Gi"  # /tmp and $HOME: base model download, HF caches, local checkpoint
    # SIGTERM (preemption, deadline) lets the trainer save a checkpoint before SIGKILL.
    termination_grace_s: int = 300

    def __post_init__(self) -> None:
        if self.gpus < 0:
            raise ValueError(f"gpus must be >= 0, got {self.gpus}")

    def node_selector(self) -> dict[str, str] | None:
        if not self.gpus:
            return None
        return {**GPU_NODE_SELECTOR, **({GPU_PRODUCT_LABEL: self.gpu_product} if self.gpu_product else {})}

    def resource_dict(self) -> dict[str, str]:
        amounts = {"cpu": self.cpu, "memory": self.memory}
        if self.gpus:
            amounts[GPU_RESOURCE] = str(self.gpus)  # extended resources: limit == request, whole GPUs
        return amounts

    def resources(self) -> V1ResourceRequirements:
        return V1ResourceRequirements(requests=self.resource_dict(), limits=self.resource_dict())


def train_command(config_uri: str) -> list[str]:
    return ["python", "-m", TRAIN_MODULE, "--config", config_uri]


def torchrun_command(config_uri: str) -> list[str]:
    """The TrainJob's command. torchrun takes nnodes, nproc-per-node, node rank and the rendezvous
    address from the PET_* env vars the torch-distributed runtime sets on every node."""
    return ["torchrun", "--module", TRAIN_MODULE, "--config", config_uri]


def run_labels(run_id: str, **extra: str) -> dict[str, str]:
    return labels("training", **{DAGSTER_RUN_ID_LABEL: run_id}, **extra)


def _plain_env() -> list[V1EnvVar]:
    return [
        V1EnvVar(name="HOME", value=HOME),
        V1EnvVar(name="HF_HOME", value=f"{HOME}/.cache/huggingface"),
        V1EnvVar(name="PYTHONUNBUFFERED", value="1"),  # log lines reach Dagster as they happen
    ]


def training_pod_spec(*, image: str, command: list[str], shape: NodeShape, active_deadline_s: int) -> V1PodSpec:
    """The single-node training pod: restricted, read-only root, scratch emptyDirs, GPU placement."""
    volumes, mounts = scratch_volumes(shape.scratch_size)
    shm, shm_mount = shm_volume(shape.shm_size)
    container = V1Container(
        name=TRAINER_CONTAINER,
        image=image,
        image_pull_policy="IfNotPresent",
        command=command,
        env=_plain_env(),
        # Endpoints from the ConfigMap, keys from the Secret: no credential is written into the spec.
        env_from=config_map_env(CONFIG_MAP) + secret_env(S3_SECRET),
        resources=shape.resources(),
        volume_mounts=[*mounts, shm_mount],
        security_context=container_security_context(),
    )
    return V1PodSpec(
        containers=[container],
        service_account_name=SERVICE_ACCOUNTS["trainer"][1],
        automount_service_account_token=False,  # the trainer never calls the Kubernetes API
        restart_policy="Never",  # a retry is Dagster's decision (it resumes from the last checkpoint)
        active_deadline_seconds=active_deadline_s,
        termination_grace_period_seconds=shape.termination_grace_s,
        node_selector=shape.node_selector(),
        tolerations=gpu_tolerations() if shape.gpus else None,
        security_context=pod_security_context(),
        volumes=[*volumes, shm],
    )


def serialize(obj: Any) -> Any:
    """A kubernetes client model as the API's JSON (camelCase keys, no None fields)."""
    return ApiClient().sanitize_for_serialization(obj)


def pipes_pod_request(
    *, run_id: str, config_uri: str, image: str, shape: NodeShape, active_deadline_s: int,
    namespace: str = NAMESPACES["training"],
) -> dict[str, Any]:
    """Keyword arguments for `PipesK8sClient.run(context=..., **request)`. The client names the pod,
    adds dagster-k8s's labels under ours and appends the Pipes env vars to the first container."""
    spec = training_pod_spec(image=image, command=train_command(config_uri), shape=shape,
                             active_deadline_s=active_deadline_s)
    return {
        "namespace": namespace,
        "base_pod_meta": serialize(V1ObjectMeta(labels=run_labels(run_id))),
        "base_pod_spec": serialize(spec),
    }


M = TypeVar("M")


def _kt(model: type[M], k8s_obj: Any) -> M:
    """A kubernetes client model (e.g. from common.py) as the Trainer SDK's model of the same type."""
    return model.from_dict(serialize(k8s_obj))  # type: ignore[attr-defined]


def train_job(
    *, name: str, run_id: str, config_uri: str, image: str, shape: NodeShape, num_nodes: int,
    active_deadline_s: int, namespace: str = NAMESPACES["training"], runtime: str = DEFAULT_RUNTIME,
    extra_env: Mapping[str, str] | None = None,
) -> kt.TrainerV1alpha1TrainJob:
    """A multi-node TrainJob. `trainer` sets what the Trainer API owns (image, command, nodes,
    resources, env); placement, security, volumes and labels go in our runtimePatches entry (the
    v1alpha1 successor of podTemplateOverrides). The trainer's env has no envFrom, so the S3 keys
    come one by one from the Secret (secretKeyRef), never as literal values."""
    if num_nodes < 1:
        raise ValueError(f"num_nodes must be >= 1, got {num_nodes}")
    env = [
        *_plain_env(),
        *config_map_key_env(CONFIG_MAP, CONFIG_MAP_KEYS, optional=CONFIG_MAP_OPTIONAL_KEYS),
        *secret_key_env(S3_SECRET, S3_SECRET_KEYS),
        *(V1EnvVar(name=k, value=v) for k, v in (extra_env or {}).items()),
    ]
    volumes, mounts = scratch_volumes(shape.scratch_size)
    shm, shm_mount = shm_volume(shape.shm_size)
    pod_patch = kt.TrainerV1alpha1PodSpecPatch(
        service_account_name=SERVICE_ACCOUNTS["trainer"][1],
        node_selector=shape.node_selector(),
        tolerations=[_kt(kt.IoK8sApiCoreV1Toleration, t) for t in gpu_tolerations()] if shape.gpus else None,
        security_context=_kt(kt.IoK8sApiCoreV1PodSecurityContext, pod_security_context()),
        termination_grace_period_seconds=shape.termination_grace_s,
        volumes=[_kt(kt.IoK8sApiCoreV1Volume, v) for v in [*volumes, shm]],
        containers=[
            kt.TrainerV1alpha1ContainerPatch(
                name=TRAINJOB_NODE,
                security_context=_kt(kt.IoK8sApiCoreV1SecurityContext, container_security_context()),
                volume_mounts=[_kt(kt.IoK8sApiCoreV1VolumeMount, m) for m in [*mounts, shm_mount]],
            )
        ],
    )
    node_patch = kt.TrainerV1alpha1ReplicatedJobPatch(
        name=TRAINJOB_NODE,
        template=kt.TrainerV1alpha1JobTemplatePatch(
            spec=kt.TrainerV1alpha1JobSpecPatch(
                template=kt.TrainerV1alpha1PodTemplatePatch(
                    metadata=kt.IoK8sApimachineryPkgApisMetaV1ObjectMeta(labels=run_labels(run_id)),
                    spec=pod_patch,
                )
            )
        ),
    )
    return kt.TrainerV1alpha1TrainJob(
        api_version=TRAINJOB_API_VERSION,
        kind="TrainJob",
        metadata=kt.IoK8sApimachineryPkgApisMetaV1ObjectMeta(name=name, namespace=namespace, labels=run_labels(run_id)),
        spec=kt.TrainerV1alpha1TrainJobSpec(
            runtime_ref=kt.TrainerV1alpha1RuntimeRef(
                name=runtime, api_group=TRAINJOB_GROUP, kind="ClusterTrainingRuntime"
            ),
            active_deadline_seconds=active_deadline_s,
            trainer=kt.TrainerV1alpha1Trainer(
                image=image,
                command=torchrun_command(config_uri),
                num_nodes=num_nodes,
                num_proc_per_node=shape.gpus or None,  # one process per GPU; None: the runtime's "auto"
                resources_per_node=_kt(kt.IoK8sApiCoreV1ResourceRequirements, shape.resources()),
                env=[_kt(kt.IoK8sApiCoreV1EnvVar, e) for e in env],
            ),
            runtime_patches=[
                kt.TrainerV1alpha1RuntimePatch(
                    manager=PATCH_MANAGER,
                    training_runtime_spec=kt.TrainerV1alpha1TrainingRuntimeSpecPatch(
                        template=kt.TrainerV1alpha1JobSetTemplatePatch(
                            spec=kt.TrainerV1alpha1JobSetSpecPatch(replicated_jobs=[node_patch])
                        )
                    ),
                )
            ],
        ),
    )


def rank0_selector(train_job_name: str) -> str:
    """Label selector of the TrainJob's rank-0 pod (node index 0): the one that reports to Dagster."""
    return f"{JOBSET_NAME_LABEL}={train_job_name},{JOBSET_RJOB_LABEL}={TRAINJOB_NODE},{JOB_INDEX_LABEL}=0"


def train_job_selector(train_job_name: str) -> str:
    return f"{JOBSET_NAME_LABEL}={train_job_name}"


def launcher_rbac_rules() -> list[V1PolicyRule]:
    """What the Dagster run pods' service account (dagster-run) needs in the training namespace:
    PipesK8sClient creates, reads, streams and deletes the pod; the TrainJob path creates, reads and
    deletes TrainJobs and lists their pods. deploy/k8s's Role should grant exactly this."""
    return [
        V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["create", "get", "list", "watch", "delete"]),
        V1PolicyRule(api_groups=[""], resources=["pods/log"], verbs=["get"]),
        V1PolicyRule(api_groups=[TRAINJOB_GROUP], resources=[TRAINJOB_PLURAL], verbs=["create", "get", "list", "watch", "delete"]),
    ]
