"""What a run tells MLflow: lineage (base model hash, snapshot, code version, config), per-step
loss / learning rate / real tokens/s / MFU / peak GPU memory, and the registered adapter."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import torch

# Dense bf16 tensor-core peak per device, TFLOP/s (vendor datasheets; no sparsity). Matched by
# substring of torch.cuda.get_device_name(); unknown devices and CPUs get no MFU.
PEAK_BF16_TFLOPS = {
    "B200": 2250.0,
    "H200": 989.0,
    "H100 SXM": 989.0,
    "H100 80GB HBM3": 989.0,
    "H100 NVL": 835.0,
    "H100 PCIe": 756.0,
    "H100": 756.0,  # an unnamed H100 variant: the lower (PCIe) figure, so MFU is not understated
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10G": 70.0,
}


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, tflops in PEAK_BF16_TFLOPS.items():
        if key in name:
            return tflops * 1e12
    return None


def peak_memory_gb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def code_version() -> str:
    """The git commit of this checkout (+dirty), else the installed package version."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"llama-platform=={version('llama-platform')}"
        except PackageNotFoundError:
            return "unknown"


def set_up_mlflow(config) -> str:
    """Point MLflow at the tracking store and select (or create) the experiment; returns its id."""
    import mlflow

    mlflow.set_tracking_uri(config.mlflow_tracking_uri)
    # The model registry is the tracking store's: without this a registry URI set earlier in the
    # process (a previous run, a serving download) would receive the version.
    mlflow.set_registry_uri(config.mlflow_tracking_uri)
    experiment = mlflow.get_experiment_by_name(config.mlflow_experiment)
    if experiment is not None:
        experiment_id = experiment.experiment_id
    else:
        location = config.mlflow_artifact_location
        if location is None and config.mlflow_tracking_uri.startswith("sqlite:///"):
            # MLflow's default would be ./mlruns under whatever the working directory is.
            db_path = Path(config.mlflow_tracking_uri.removeprefix("sqlite:///")).resolve()
            location = (db_path.parent / "mlartifacts").as_uri()
        try:
            experiment_id = mlflow.create_experiment(config.mlflow_experiment, artifact_location=location)
        except mlflow.exceptions.MlflowException:
            # Another run created it between our lookup and create.
            experiment = mlflow.get_experiment_by_name(config.mlflow_experiment)
            if experiment is None:
                raise
            experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def log_dataset_inputs(config, train_df) -> None:
    """The rows trained on (from the training set's path), the issue snapshot they came from and
    each Feast feature view, as MLflow dataset inputs of the run."""
    import mlflow
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.meta_dataset import MetaDataset

    snapshot = config.snapshot_version or "unversioned"
    columns = [c for c in ("issue_id", "prompt", "completion", "label") if c in train_df.columns]
    dataset = mlflow.data.from_pandas(train_df[columns], source=config.training_set_path,
                                      name=f"training_set@{snapshot}")
    mlflow.log_input(dataset, context="training", tags={"snapshot_version": snapshot})
    # Snapshot and feature views are referenced, not copied: a tags-only source names them.
    mlflow.log_input(MetaDataset(CodeDatasetSource({"kind": "issue_snapshot", "version": snapshot}),
                                 name=f"issue_snapshot@{snapshot}", digest=snapshot[:36]),
                     context="snapshot")
    for view in config.feature_views:
        mlflow.log_input(MetaDataset(CodeDatasetSource({"kind": "feast_feature_view", "name": view}),
                                     name=view, digest=f"{view}@{snapshot}"[:36]),
                         context="features", tags={"snapshot_version": snapshot})


def register_alias(name: str | None, version: Any, alias: str | None) -> None:
    if name and version is not None and alias:
        from mlflow import MlflowClient

        MlflowClient().set_registered_model_alias(name, alias, str(version))


def pip_requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for name in ("torch", "transformers", "peft", "accelerate", "tokenizers", "pandas", "mlflow", "llama-platform"):
        try:
            reqs.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            reqs.append(name)
    return reqs
