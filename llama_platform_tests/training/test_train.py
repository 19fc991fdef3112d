from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from llama_platform.training.evaluate import evaluate
from llama_platform.training.inference import TriageModel
from llama_platform.training.mlflow_model import download_model_dir
from llama_platform.training.prompts import LABELS, PROMPT_FORMAT_VERSION
from llama_platform_tests.training.conftest import SHORT_RUN_STEPS, short_config


def test_loss_falls_and_outputs_are_written(trained):
    result, config = trained["result"], trained["config"]
    out = Path(config.output_dir)
    assert result["steps"] == SHORT_RUN_STEPS
    # first/final are means of the first and last 10 steps.
    assert result["final_loss"] < 0.6 * result["first_loss"], result
    assert result["val_loss"] < result["first_loss"]
    for part in ("base/config.json", "base/model.safetensors", "adapter/adapter_config.json",
                 "adapter/adapter_model.safetensors", "tokenizer/tokenizer.json", "triage.json"):
        assert (out / "model" / part).is_file(), part
    meta = json.loads((out / "model/triage.json").read_text())
    assert meta["labels"] == list(LABELS) and meta["prompt_format_version"] == PROMPT_FORMAT_VERSION
    assert meta["training_config"]["max_steps"] == SHORT_RUN_STEPS
    assert json.loads((out / "result.json").read_text()) == json.loads(json.dumps(result))
    assert Path(result["loss_curve_path"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any(f"step {SHORT_RUN_STEPS}/{SHORT_RUN_STEPS}" in m for m in trained["messages"])


def test_mlflow_run_metrics_artifacts_and_registered_version(trained):
    result, config = trained["result"], trained["config"]
    # The registry named too: MLflow otherwise takes it from process-wide state other tests set.
    client = MlflowClient(tracking_uri=config.mlflow_tracking_uri, registry_uri=config.mlflow_tracking_uri)
    run = client.get_run(result["mlflow_run_id"])
    assert run.data.params["max_steps"] == str(SHORT_RUN_STEPS)
    assert run.data.tags["purpose"] == "test"
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert [m.step for m in history] == list(range(1, SHORT_RUN_STEPS + 1))
    assert run.data.metrics["val_loss"] == pytest.approx(result["val_loss"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert "plots/loss_curve.png" in artifacts
    # Artifacts live next to the sqlite db, not in the working directory.
    assert Path(trained["workdir"], "mlartifacts").is_dir()

    version = client.get_model_version(config.registered_model_name, str(result["model_version"]))
    assert version.run_id == run.info.run_id
    assert result["model_uri"] == f"models:/{config.registered_model_name}/{result['model_version']}"
    assert client.get_model_version_by_alias(config.registered_model_name, "candidate").version == version.version


def test_mlflow_lineage_and_per_step_tracking(trained):
    result, config = trained["result"], trained["config"]
    client = MlflowClient(tracking_uri=config.mlflow_tracking_uri)
    run = client.get_run(result["mlflow_run_id"])
    params, tags = run.data.params, run.data.tags
    # The local model is labelled as what it is; its hash and the code version are recorded.
    assert params["base_model_kind"] == tags["base_model_kind"] == "tiny-random-init"
    assert params["base_model_hash"] == result["base_model_hash"] and len(result["base_model_hash"]) == 64
    assert params["code_version"] and params["code_version"] != "unknown"
    assert tags["snapshot_version"] == "unversioned"
    meta = json.loads((Path(config.output_dir) / "model/triage.json").read_text())
    assert meta["base_model"]["kind"] == "tiny-random-init"
    for name in ("learning_rate", "real_tokens_per_second"):
        history = client.get_metric_history(run.info.run_id, name)
        assert [m.step for m in history] == list(range(1, SHORT_RUN_STEPS + 1)), name
    lrs = [m.value for m in client.get_metric_history(run.info.run_id, "learning_rate")]
    assert max(lrs) == pytest.approx(config.learning_rate, rel=0.05) and lrs[-1] < lrs[config.warmup_steps]
    assert all(m.value > 0 for m in client.get_metric_history(run.info.run_id, "real_tokens_per_second"))
    assert "mfu" not in run.data.metrics  # CPU: no peak FLOP/s to divide by
    assert any(k.startswith("system/") for k in run.data.metrics)  # MLflow system metrics
    inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert "training_set@unversioned" in inputs and "issue_snapshot@unversioned" in inputs


def test_registered_model_loads_with_pyfunc_and_downloads_for_serving(trained, training_set, tmp_path):
    result, config = trained["result"], trained["config"]
    mlflow.set_tracking_uri(config.mlflow_tracking_uri)
    mlflow.set_registry_uri(config.mlflow_tracking_uri)
    test_df = training_set[training_set["split"] == "test"]
    loaded = mlflow.pyfunc.load_model(result["model_uri"])
    preds = loaded.predict(pd.DataFrame({"prompt": test_df["prompt"]}))
    assert len(preds) == len(test_df)
    assert all(p["labels"][0] in LABELS for p in preds)
    # Raw issue fields are formatted with the shared prompt format.
    one = loaded.predict(pd.DataFrame([{"title": "App crashes", "body": "Traceback error", "repo": "o/r"}]))
    assert one[0]["labels"][0] in LABELS

    # The serving path: download the version's files and load the model directory directly.
    # With the process-wide MLflow URIs pointing elsewhere, as in a fresh serving process.
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'other.db'}")
    mlflow.set_registry_uri(f"sqlite:///{tmp_path / 'other.db'}")
    model_dir = download_model_dir(result["model_uri"], tmp_path / "dl", tracking_uri=config.mlflow_tracking_uri)
    model = TriageModel.load(model_dir)
    assert model.predict([test_df["prompt"].iloc[0]])[0]["scores"] == pytest.approx(preds[0]["scores"], abs=1e-5)


def test_inference_labels_scores_and_loss(trained, training_set):
    model = TriageModel.load(Path(trained["config"].output_dir) / "model")
    val = training_set[training_set["split"] == "val"]
    preds = model.predict(val["prompt"].tolist())
    for p in preds:
        assert set(p["scores"]) == set(LABELS)
        assert sum(p["scores"].values()) == pytest.approx(1.0, abs=1e-5)
        assert all(0.0 <= s <= 1.0 for s in p["scores"].values())
        assert p["labels"] and set(p["labels"]) <= set(LABELS)
        assert p["labels"][0] == max(p["scores"], key=p["scores"].get)
    assert model.predict([]) == []
    with pytest.raises(ValueError):
        model.predict([""])
    good = model.loss(val["prompt"].tolist(), val["completion"].tolist())
    assert good == pytest.approx(trained["result"]["val_loss"], rel=1e-4)
    # After 40 steps the model knows the answer format, so any label beats a non-label word.
    garbage = model.loss(val["prompt"].tolist(), [" Traceback"] * len(val))
    assert garbage > good + 1.0


def test_evaluate_metrics_and_cli(trained, training_set, training_set_path, tmp_path):
    model_dir = Path(trained["config"].output_dir) / "model"
    test_df = training_set[training_set["split"] == "test"]
    metrics = evaluate(model_dir, test_df)
    assert metrics["n_examples"] == len(test_df)
    assert 0 < metrics["val_loss"] < 10
    assert metrics["perplexity"] > 1
    assert 0.0 <= metrics["label_accuracy"] <= 1.0
    assert metrics["majority_baseline_accuracy"] == pytest.approx(0.25)  # balanced synthetic labels
    assert metrics["majority_baseline_from"] == "train"
    assert sum(v["support"] for v in metrics["per_label"].values()) == len(test_df)
    assert sum(v["predicted"] for v in metrics["per_label"].values()) == len(test_df)

    out = tmp_path / "metrics.json"
    proc = subprocess.run(
        [sys.executable, "-m", "llama_platform.training.evaluate", "--model-dir", str(model_dir),
         "--data", str(training_set_path), "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(out.read_text())["label_accuracy"] == pytest.approx(metrics["label_accuracy"])


def test_bad_training_set_is_refused_with_reason(tmp_path, training_set):
    from llama_platform.training.train import train

    bad = training_set.copy()
    bad.loc[0, "label"] = "enhancement"
    path = tmp_path / "bad.parquet"
    bad.to_parquet(path)
    with pytest.raises(ValueError, match=r"1 training-set rows are invalid.*label not in"):
        train(short_config(tmp_path, path), log=lambda m: None, show_progress=False)
    assert not (tmp_path / "mlflow.db").exists()  # refused before any run was logged


@pytest.mark.slow
def test_default_length_run_learns_to_read_labels(tmp_path, training_set_path, training_set):
    """The default step count takes the tiny model from the label prior to reading the text."""
    from llama_platform.training.config import TrainConfig
    from llama_platform.training.train import train

    defaults = TrainConfig(training_set_path="-", output_dir="-", mlflow_tracking_uri="sqlite:///-")
    config = short_config(tmp_path, training_set_path, max_steps=defaults.max_steps, registered_model_name=None)
    result = train(config, log=lambda m: None, show_progress=False)
    assert result["final_loss"] < 0.15 * result["first_loss"]
    assert result["model_version"] is None and result["model_uri"].startswith("models:/m-")
    metrics = evaluate(Path(config.output_dir) / "model", training_set[training_set["split"] == "test"])
    assert metrics["label_accuracy"] >= 0.8
    assert metrics["label_accuracy"] > metrics["majority_baseline_accuracy"] + 0.4
