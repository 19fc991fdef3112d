"""Stage 6: LoRA fine-tune of Llama 4, run as its own process through Dagster Pipes.

One entrypoint, one config (`python -m llama_platform.training.train --config ...`), launched by
profile: locally PipesSubprocessClient runs it on this machine; in the k8s profile the config and
data go to the object store and the `kubernetes` resource runs it as a GPU pod (PipesK8sClient) or,
for more than one node, as a Kubeflow TrainJob. Either way its logs and results reach this run.
"""

import io
import json
import sys
from pathlib import Path

import pandas as pd
from dagster import (
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    PipesSubprocessClient,
    asset,
)
from dagster._core.pipes.client import PipesClientCompletedInvocation

from llama_platform.assets.automation import follow_upstream
from llama_platform.assets.common import code_version_of, png_markdown
from llama_platform.assets.lineage import UpstreamNotMaterialised, upstream_metadata
from llama_platform.k8s.training import HOME
from llama_platform.resources.kubernetes import KubernetesResource
from llama_platform.resources.mlflow import MLflowResource
from llama_platform.resources.object_store import ObjectStoreResource
from llama_platform.resources.training import TrainingResource

# Where a k8s run's inputs live in the object store (one folder per Dagster run).
K8S_RUNS_PREFIX = "training/runs"


@asset(
    group_name="training",
    automation_condition=follow_upstream,
    description="LoRA adapter on a tiny random-init Llama 4 (CPU locally), logged to MLflow and registered as a model version.",
    kinds={"pytorch", "mlflow"},
    code_version=code_version_of("assets/training.py", "training", "k8s"),
    tags={"stage": "train"},
    pool="training",  # one fine-tune at a time: it takes the CPUs (or the GPU)
)
def finetuned_checkpoint(
    context: AssetExecutionContext,
    training_set: pd.DataFrame,
    training: TrainingResource,
    mlflow: MLflowResource,
    pipes_subprocess_client: PipesSubprocessClient,
    object_store: ObjectStoreResource,
    kubernetes: KubernetesResource,
):
    mlflow.ensure_experiment()
    context.log.info(f"training on {len(training_set)} examples for {training.max_steps} steps")
    if training.launcher == "subprocess":
        invocation = run_locally(context, training, mlflow, training_set, pipes_subprocess_client)
    else:
        invocation = run_on_kubernetes(context, training, mlflow, training_set, object_store, kubernetes)
    result = invocation.get_materialize_result()
    reported = {k: getattr(v, "value", v) for k, v in (result.metadata or {}).items()}
    extra = {}
    if reported.get("mlflow_run_id"):
        link = mlflow.run_link(reported.get("mlflow_experiment_id"), reported["mlflow_run_id"])
        extra["mlflow_run"] = MetadataValue.url(link) if mlflow.ui_url else link
    if reported.get("model_version"):
        link = mlflow.model_link(str(reported["model_version"]))
        extra["registered_model"] = MetadataValue.url(link) if mlflow.ui_url else link
        describe_version(context, mlflow, str(reported["model_version"]), len(training_set))
    plot = reported.get("loss_curve_path")
    if plot and Path(plot).exists():
        extra["loss_curve"] = png_markdown(Path(plot).read_bytes(), "training loss")
    return MaterializeResult(metadata={**(result.metadata or {}), **extra})


def describe_version(context: AssetExecutionContext, mlflow: MLflowResource, version: str, n_examples: int) -> None:
    """Say on the registered model version where it came from (snapshot, examples, Dagster run)."""
    snapshot = upstream_metadata(context, "training_set").get("snapshot_version", "?")
    mlflow.describe_model_version(version, (
        f"LoRA fine-tune of a Llama 4 text model for issue triage (labels), trained on {n_examples} examples "
        f"of dataset snapshot {snapshot} by Dagster run {context.run_id} (asset finetuned_checkpoint)."
    ))


def train_config(
    context: AssetExecutionContext, training: TrainingResource, mlflow: MLflowResource,
    training_set_path: str, output_dir: str,
) -> dict:
    """The one TrainConfig (as JSON) both launchers hand to the entrypoint."""
    return {
        "training_set_path": training_set_path,
        "output_dir": output_dir,
        "max_steps": training.max_steps,
        "batch_size": training.batch_size,
        "learning_rate": training.learning_rate,
        "seq_len": training.seq_len,
        "seed": training.seed,
        "mlflow_tracking_uri": mlflow.tracking_uri,
        "mlflow_experiment": mlflow.experiment,
        "registered_model_name": mlflow.registered_model_name,
        "run_name": f"dagster-{context.run_id[:8]}",
        "tags": {"dagster_run_id": context.run_id},
        **training.recipe_fields(),
        **_lineage(context),
    }


def run_locally(
    context: AssetExecutionContext, training: TrainingResource, mlflow: MLflowResource,
    training_set: pd.DataFrame, client: PipesSubprocessClient,
) -> PipesClientCompletedInvocation:
    """Local profile: files in the work dir, the entrypoint as a subprocess of this step."""
    run_dir = Path(training.work_dir) / context.run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    data_path = run_dir / "training_set.parquet"
    training_set.to_parquet(data_path, index=False)
    config = train_config(context, training, mlflow, str(data_path), str(run_dir / "output"))
    config_path = run_dir / "train_config.json"
    config_path.write_text(json.dumps(config, indent=2))
    return client.run(
        command=[sys.executable, "-m", "llama_platform.training.train", "--config", str(config_path)],
        context=context,
    )


def run_on_kubernetes(
    context: AssetExecutionContext, training: TrainingResource, mlflow: MLflowResource,
    training_set: pd.DataFrame, object_store: ObjectStoreResource, kubernetes: KubernetesResource,
) -> PipesClientCompletedInvocation:
    """k8s profile: inputs to the object store (a pod sees nothing else), then one GPU pod through
    PipesK8sClient, or a TrainJob whose rank 0 reports over Pipes when more than one node is asked for."""
    data_uri = _k8s_uri(object_store, context.run_id, "training_set.parquet")
    # output_dir is pod scratch: the model and metrics go to MLflow, whose artifacts live on the object store.
    config = train_config(context, training, mlflow, data_uri, f"{HOME}/output")
    # Checkpoints must outlive the pod: a restarted pod (same config) resumes from the store.
    config["checkpoint_dir"] = _k8s_uri(object_store, context.run_id, "checkpoints")
    config_uri = stage_k8s_inputs(object_store, context.run_id, training_set, config)
    context.log.info(f"config at {config_uri}")
    if kubernetes.multi_node:
        return kubernetes.run_train_job(context, config_uri)
    return kubernetes.run_pod(context, config_uri)


def _k8s_uri(object_store: ObjectStoreResource, run_id: str, name: str) -> str:
    return object_store.location().uri(K8S_RUNS_PREFIX, run_id, name)


def stage_k8s_inputs(object_store: ObjectStoreResource, run_id: str, training_set: pd.DataFrame, config: dict) -> str:
    """Upload the training set and the config for a pod, which sees only the object store;
    returns the config's s3:// URI (the pod's one argument)."""
    store = object_store.location()
    if not store.url.startswith("s3://"):
        # A pod cannot read this machine's folders: the k8s profile needs an S3 store (MinIO).
        raise Failure(description=f"training on Kubernetes needs an s3:// object store, got {store.url}")
    buffer = io.BytesIO()
    training_set.to_parquet(buffer, index=False)
    store.write_bytes(f"{K8S_RUNS_PREFIX}/{run_id}/training_set.parquet", buffer.getvalue())
    store.write_bytes(f"{K8S_RUNS_PREFIX}/{run_id}/train_config.json", json.dumps(config, indent=2).encode())
    return store.uri(K8S_RUNS_PREFIX, run_id, "train_config.json")


def _lineage(context: AssetExecutionContext) -> dict:
    """The snapshot version and feature views the training set came from (logged as MLflow inputs)."""
    try:
        return {"snapshot_version": upstream_metadata(context, "training_set").get("snapshot_version"),
                "feature_views": list(upstream_metadata(context, "issue_features").get("feature_views") or [])}
    except UpstreamNotMaterialised:
        return {}
