"""The error-analysis notebook, executed by Dagster (dagstermill) as the `error_analysis` asset.

Upstream state is real where the notebook reads it: a snapshot materialised from raw rows (clean ->
issue_snapshot) in a local object store, and model_evaluation's per-issue predictions as Parquet in
that store, named by model_evaluation's (reported) materialization metadata.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import numpy as np
import pytest
from dagster import (
    AssetKey,
    AssetMaterialization,
    Definitions,
    define_asset_job,
    execute_job,
    instance_for_test,
    materialize,
    reconstructable,
)
from dagstermill import ConfigurableLocalOutputNotebookIOManager

from llama_platform.assets.cleaning import clean
from llama_platform.assets.error_analysis import error_analysis
from llama_platform.assets.snapshot import issue_snapshot
from llama_platform.data.snapshot import read_snapshot
from llama_platform.data.store import open_store
from llama_platform.evaluation.errors import predictions_frame, to_parquet_bytes
from llama_platform.evaluation.metrics import Predictions, choose_labels, evaluate_predictions, indicator, summary_row
from llama_platform.resources.cleaning import CleaningResource
from llama_platform.resources.io_manager import ParquetIOManager
from llama_platform.resources.object_store import ObjectStoreResource
from llama_platform.training.prompts import LABELS
from llama_platform_tests.assets.factories import raw_frame, stub


def analysis_job():
    defs = Definitions(
        assets=[error_analysis],
        jobs=[define_asset_job("analysis_job", selection=["error_analysis"])],
        resources={
            "object_store": ObjectStoreResource.configure_at_launch(),
            "output_notebook_io_manager": ConfigurableLocalOutputNotebookIOManager.configure_at_launch(),
        },
    )
    return defs.resolve_job_def("analysis_job")


@pytest.fixture()
def platform(tmp_path, monkeypatch):
    home = tmp_path / "home"
    store_url = f"file://{home}/store"
    monkeypatch.setenv("LLAMA_PLATFORM_HOME", str(home))
    monkeypatch.setenv("LLAMA_PLATFORM_STORE_URL", store_url)
    (home / "dagster_home").mkdir(parents=True)
    with instance_for_test(temp_dir=str(home / "dagster_home")) as instance:
        result = materialize(
            [stub("raw_issues", raw_frame()), clean, issue_snapshot],
            instance=instance,
            resources={
                "parquet_io_manager": ParquetIOManager(url=store_url),
                "object_store": ObjectStoreResource(url=store_url),
                "cleaning": CleaningResource(spill_dir=str(home / "spill")),
            },
        )
        assert result.success
        version = instance.get_latest_materialization_event(AssetKey("issue_snapshot")).asset_materialization.metadata["snapshot_version"].value
        store = open_store(store_url)
        snap, _ = read_snapshot(store, version)
        snap = snap[snap["label"].isin(LABELS)].reset_index(drop=True)
        truth = indicator([[l for l in ls if l in LABELS] or [p] for ls, p in zip(snap["labels"], snap["label"])], LABELS)
        rng = np.random.default_rng(0)
        scores = rng.dirichlet(np.ones(len(LABELS)), size=len(snap))
        models = {"fine-tuned": Predictions("fine-tuned", scores, choose_labels(scores, 0.3)),
                  "h2o": Predictions("h2o", truth * 0.7 + 0.075, truth)}
        base = snap[["issue_id", "label"]].assign(labels=[[l for l, on in zip(LABELS, row) if on] for row in truth],
                                                   source=snap["source"], lang=snap["lang"])
        store.write_bytes("evaluations/r1/predictions.parquet", to_parquet_bytes(predictions_frame(base, models, LABELS)))
        comparison = "| model | micro_f1 |\n|---|---|\n" + "\n".join(
            f"| {n} | {summary_row(n, evaluate_predictions(truth, p, LABELS, n_resamples=50))['micro_f1']} |"
            for n, p in models.items())
        instance.report_runless_asset_event(AssetMaterialization("training_set", metadata={"snapshot_version": version}))
        instance.report_runless_asset_event(AssetMaterialization("model_evaluation", metadata={
            "predictions_path": "evaluations/r1/predictions.parquet", "comparison": comparison,
            "gate_reasons": "- does not beat h2o", "gate_decision": "refuse", "model_version": "3"}))
        yield instance, store_url, home, len(snap)


@pytest.mark.slow  # a Jupyter kernel that imports Dagster and the platform: ~30 s idle, minutes on a busy machine
def test_dagster_executes_the_error_analysis_notebook(platform):
    instance, store_url, home, n = platform
    run_config = {"resources": {"object_store": {"config": {"url": store_url}},
                                "output_notebook_io_manager": {"config": {"base_dir": str(home / "notebooks")}}}}
    with execute_job(reconstructable(analysis_job), instance=instance, run_config=run_config) as result:
        assert result.success
    event = instance.get_latest_materialization_event(AssetKey("error_analysis"))
    nb = nbformat.read(Path(event.asset_materialization.metadata["Executed notebook"].value), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {})) for c in code for o in c.get("outputs", []))
    assert f"{n} test issues" in text and "models: fine-tuned, h2o" in text
    assert "does not beat h2o" in text
    (bars,) = [c for c in code if "missed issues per label" in c.source]
    assert any("image/png" in o.get("data", {}) for o in bars.outputs)
    (worst,) = [c for c in code if "worst_per_label(df" in c.source]
    assert sum("missed" in str(o.get("data", {})) for o in worst.outputs) == len(LABELS)
    observation = instance.fetch_observations(AssetKey("error_analysis"), limit=1).records[0]
    meta = observation.asset_observation.metadata
    assert meta["test_issues"].value == n and meta["model_version"].value == "3"
