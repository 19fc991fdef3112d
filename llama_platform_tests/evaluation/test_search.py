"""The Optuna study: two tiny trials through the real training entrypoint, logged as MLflow child runs."""

from __future__ import annotations

import json

import mlflow
import optuna
import pytest

from llama_platform.evaluation import search
from llama_platform.evaluation.search import SEARCH_SPACE, Param, suggest
from llama_platform_tests.training.synthetic import write_synthetic_training_set


def test_suggest_covers_the_search_space():
    trial = optuna.trial.FixedTrial({"learning_rate": 1e-3, "lora_r": 8, "max_steps": 80})
    assert suggest(trial) == {"learning_rate": 1e-3, "lora_r": 8, "max_steps": 80}
    assert {p.name for p in SEARCH_SPACE} == {"learning_rate", "lora_r", "max_steps"}
    with pytest.raises(ValueError, match="unknown parameter kind"):
        suggest(trial, [Param("x", "float")])


def test_trial_config_types_and_checks_katib_values(tmp_path):
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"training_set_path": "x", "registered_model_name": "m", "lora_r": 8}))
    out = tmp_path / "trial.json"
    assert search.main(["trial-config", "--base-config", str(base), "--set", "learning_rate=0.002",
                        "--set", "lora_r=16", "--set", "max_steps=120", "--out", str(out)]) == 0
    cfg = json.loads(out.read_text())
    assert cfg == {"training_set_path": "x", "registered_model_name": None, "lora_r": 16,
                   "learning_rate": 0.002, "max_steps": 120}
    with pytest.raises(ValueError, match="not one of"):
        search.trial_config({}, ["lora_r=5"])
    with pytest.raises(ValueError, match="outside"):
        search.trial_config({}, ["learning_rate=1"])
    with pytest.raises(ValueError, match="NAME=VALUE"):
        search.trial_config({}, ["dropout=0.1"])


@pytest.mark.slow
def test_two_trial_study_logs_child_runs_and_reports_the_best(tmp_path, monkeypatch):
    data = write_synthetic_training_set(tmp_path / "ts.parquet", n=80)
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    base = {"training_set_path": str(data), "output_dir": "unused", "mlflow_tracking_uri": tracking,
            "mlflow_experiment": "search-test", "batch_size": 8, "seq_len": 160, "hidden_size": 32,
            "num_layers": 2, "vocab_size": 400, "log_every": 1}
    (tmp_path / "base.json").write_text(json.dumps(base))
    tiny = (Param("learning_rate", "double", 1e-3, 1e-2, log=True), Param("lora_r", "categorical", choices=(4, 8)),
            Param("max_steps", "int", 2, 4, step=2))
    monkeypatch.setattr(search, "SEARCH_SPACE", tiny)
    assert search.main(["study", "--base-config", str(tmp_path / "base.json"), "--trials", "2",
                        "--out", str(tmp_path / "best.json")]) == 0
    best = json.loads((tmp_path / "best.json").read_text())
    assert len(best["trials"]) == 2
    losses = [t["val_loss"] for t in best["trials"]]
    assert best["best_val_loss"] == min(losses)
    assert best["best_config"]["learning_rate"] == best["best_values"]["learning_rate"]
    assert best["best_config"]["training_set_path"] == str(data)

    client = mlflow.tracking.MlflowClient(tracking_uri=tracking)
    parent = client.get_run(best["mlflow_parent_run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["best_val_loss"] == pytest.approx(min(losses))
    exp = client.get_experiment_by_name("search-test")
    children = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(r.info.run_id for r in children) == sorted(t["mlflow_run_id"] for t in best["trials"])
    for run, trial in zip(sorted(children, key=lambda r: int(r.data.tags["optuna.trial"])), best["trials"]):
        assert float(run.data.params["learning_rate"]) == pytest.approx(trial["values"]["learning_rate"])
        assert int(run.data.params["max_steps"]) in (2, 4)
    assert client.search_registered_models() == []  # trials register nothing
