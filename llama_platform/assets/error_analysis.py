"""Error analysis: notebooks/error_analysis.ipynb, executed by Dagster (dagstermill) as an asset.

The notebook reads, through Dagster, model_evaluation's latest materialization (its comparison
table and the per-issue predictions it stored in the object store) and the snapshot's titles, and
shows the worst-classified issues per label. The helpers below are what the notebook calls, both
when Dagster runs it and when someone opens it in JupyterLab (`make lab`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from dagster import DagsterInstance
from dagstermill import define_dagstermill_asset

from llama_platform.assets.report import _latest_metadata
from llama_platform.data.snapshot import read_snapshot_columns
from llama_platform.data.store import StoreLocation

NOTEBOOK_PATH = Path(__file__).resolve().parents[2] / "notebooks" / "error_analysis.ipynb"


@dataclass(frozen=True)
class ErrorAnalysisData:
    predictions: pd.DataFrame  # one row per test issue: truth, title, each model's scores and labels
    evaluation_meta: dict[str, Any]  # model_evaluation's materialization metadata
    snapshot_version: str

    @property
    def models(self) -> list[str]:
        return [c.removesuffix("__labels") for c in self.predictions.columns if c.endswith("__labels")]


def load_error_analysis_data(instance: DagsterInstance, store: StoreLocation) -> ErrorAnalysisData:
    meta = _latest_metadata(instance, "model_evaluation")
    predictions = pd.read_parquet(io.BytesIO(store.read_bytes(meta["predictions_path"])))
    predictions["labels"] = predictions["labels"].map(list)
    version = _latest_metadata(instance, "training_set")["snapshot_version"]
    text = read_snapshot_columns(store, version, ["issue_id", "title", "repo"])
    merged = predictions.merge(text, on="issue_id", how="left")
    if merged["title"].isna().any():
        raise ValueError(f"predictions name issues missing from snapshot {version}")
    return ErrorAnalysisData(merged, meta, version)


error_analysis = define_dagstermill_asset(
    name="error_analysis",
    notebook_path=str(NOTEBOOK_PATH),
    deps=["model_evaluation"],
    required_resource_keys={"object_store"},
    group_name="training",
    description="Error analysis of the evaluated models on the test split: error counts per label and the "
    "worst-classified issues (executed notebook linked in metadata).",
    io_manager_key="output_notebook_io_manager",
    save_notebook_on_failure=True,
)
