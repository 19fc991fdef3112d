"""Stage 6: LoRA fine-tune of a tiny Llama 4, run as its own process through Dagster Pipes.

The same entrypoint (`python -m llama_platform.training.train --config ...`) is what a GPU pod
runs in the k8s profile; here PipesSubprocessClient launches it and relays its logs and metadata.
"""

import json
import sys
from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, PipesSubprocessClient, asset

from llama_platform.assets.automation import follow_upstream
from llama_platform.assets.common import png_markdown
from llama_platform.assets.lineage import UpstreamNotMaterialised, upstream_metadata
from llama_platform.resources.mlflow import MLflowResource
from llama_platform.resources.training import TrainingResource


@asset(
    group_name="training",
    automation_condition=follow_upstream,
    description="LoRA adapter on a tiny random-init Llama 4 (CPU locally), logged to MLflow and registered as a model version.",
    kinds={"pytorch", "mlflow"},
    pool="training",  # one fine-tune at a time: it takes the CPUs (or the GPU)
)
def finetuned_checkpoint(
    context: AssetExecutionContext,
    training_set: pd.DataFrame,
    training: TrainingResource,
    mlflow: MLflowResource,
    pipes_subprocess_client: PipesSubprocessClient,
):
    run_dir = Path(training.work_dir) / context.run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    data_path = run_dir / "training_set.parquet"
    training_set.to_parquet(data_path, index=False)
    config = {
        "training_set_path": str(data_path),
        "output_dir": str(run_dir / "output"),
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
    mlflow.ensure_experiment()
    config_path = run_dir / "train_config.json"
    config_path.write_text(json.dumps(config, indent=2))
    context.log.info(f"training on {len(training_set)} examples for {training.max_steps} steps")
    result = pipes_subprocess_client.run(
        command=[sys.executable, "-m", "llama_platform.training.train", "--config", str(config_path)],
        context=context,
    ).get_materialize_result()
    reported = {k: getattr(v, "value", v) for k, v in (result.metadata or {}).items()}
    extra = {}
    if reported.get("mlflow_run_id"):
        link = mlflow.run_link(reported.get("mlflow_experiment_id"), reported["mlflow_run_id"])
        extra["mlflow_run"] = MetadataValue.url(link) if mlflow.ui_url else link
    if reported.get("model_version"):
        extra["registered_model"] = mlflow.model_link(str(reported["model_version"]))
    plot = reported.get("loss_curve_path")
    if plot and Path(plot).exists():
        extra["loss_curve"] = png_markdown(Path(plot).read_bytes(), "training loss")
    return MaterializeResult(metadata={**(result.metadata or {}), **extra})


def _lineage(context: AssetExecutionContext) -> dict:
    """The snapshot version and feature views the training set came from (logged as MLflow inputs)."""
    try:
        return {"snapshot_version": upstream_metadata(context, "training_set").get("snapshot_version"),
                "feature_views": list(upstream_metadata(context, "issue_features").get("feature_views") or [])}
    except UpstreamNotMaterialised:
        return {}
