"""Resumable and safe: a real SIGTERM mid-run saves a checkpoint to the object store, the re-run of
the same config resumes and gives the uninterrupted run's per-step losses; NaN and divergence stop."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from llama_platform.training.checkpointing import (
    COMPLETE_MARKER,
    StepLosses,
    TrainingDiverged,
    check_divergence,
    latest_checkpoint,
)
from llama_platform_tests.training.conftest import short_config

REPO = Path(__file__).resolve().parents[2]
STEPS, SAVE_EVERY = 12, 4


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory) -> str:
    # One tracking db for the module: creating a sqlite MLflow db runs its migrations (~8 s).
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def resume_config(workdir: Path, training_set_path: Path, **overrides):
    values = dict(max_steps=STEPS, save_every=SAVE_EVERY, log_every=4, warmup_steps=2,
                  registered_model_name=None, mlflow_system_metrics=False, mlflow_experiment=workdir.name)
    return short_config(workdir, training_set_path, **{**values, **overrides})


def test_guards_stop_on_nan_inf_and_runaway_loss():
    rec = StepLosses()
    rec.add_micro_batch(2.0, 10, 55, step=1)
    assert rec.close_step() == (2.0, 10, 55)
    for bad in (math.nan, math.inf):
        with pytest.raises(TrainingDiverged, match="loss became .* at step 7"):
            rec.add_micro_batch(bad, 10, 55, step=7)
    check_divergence([6.0, 5.0, 4.0, 3.0, 2.5, 2.0], factor=2.0)  # falling: fine
    check_divergence([6.0, 30.0, 30.0], factor=2.0)  # too few steps to judge yet
    with pytest.raises(TrainingDiverged, match="diverged at step 6"):
        check_divergence([6.0, 5.0, 9.0, 14.0, 20.0, 30.0], factor=2.0)


@pytest.mark.parametrize("lr,match", [(1e30, "loss became nan at step 2"), (1e3, "loss diverged at step")])
def test_nan_or_diverging_loss_stops_the_run_with_a_clear_error(tmp_path, training_set_path, tracking_uri, lr, match):
    from llama_platform.training.train import train

    config = resume_config(tmp_path, training_set_path, learning_rate=lr, warmup_steps=0, max_steps=10,
                           mlflow_tracking_uri=tracking_uri)
    with pytest.raises(TrainingDiverged, match=match):
        train(config, log=lambda m: None, show_progress=False)
    client = MlflowClient(tracking_uri=config.mlflow_tracking_uri)
    [run] = client.search_runs([client.get_experiment_by_name(config.mlflow_experiment).experiment_id])
    assert run.info.status == "FAILED"
    assert not (Path(config.output_dir) / "model" / "triage.json").exists()  # nothing to promote


def _env(s3_server) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DAGSTER_PIPES"))}
    env.update({"AWS_ENDPOINT_URL": s3_server.endpoint_url, "AWS_ACCESS_KEY_ID": s3_server.access_key,
                "AWS_SECRET_ACCESS_KEY": s3_server.secret_key, "AWS_DEFAULT_REGION": "us-east-1",
                "PYTHONPATH": str(REPO)})
    return env


def _start(config_uri: str, env: dict, log: Path) -> subprocess.Popen:
    # Default SIGTERM handling restored in the child (FIELD-NOTES: it may inherit "ignored").
    return subprocess.Popen(
        ["env", "--default-signal=TERM,INT", sys.executable, "-m", "llama_platform.training.train",
         "--config", config_uri], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def test_sigterm_saves_and_the_rerun_resumes_with_the_same_losses(tmp_path, training_set_path, s3_server, s3_bucket,
                                                                   tracking_uri, monkeypatch):
    from llama_platform.training.train import LOSSES_FILE, train

    # The reference: the same config, never interrupted (in process; same code, same threads).
    reference = resume_config(tmp_path / "ref", training_set_path, mlflow_tracking_uri=tracking_uri)
    expected = train(reference, log=lambda m: None, show_progress=False)
    expected_losses = json.loads((Path(reference.output_dir) / LOSSES_FILE).read_text())
    assert len(expected_losses) == STEPS

    # The interrupted job: config and checkpoints in the object store, as in a pod.
    checkpoints = f"s3://{s3_bucket}/runs/r1/checkpoints"
    config = resume_config(tmp_path / "job", training_set_path, checkpoint_dir=checkpoints,
                           mlflow_tracking_uri=tracking_uri)
    s3 = s3_server.client()
    s3.put_object(Bucket=s3_bucket, Key="runs/r1/train_config.json", Body=config.to_json().encode())
    config_uri = f"s3://{s3_bucket}/runs/r1/train_config.json"
    env = _env(s3_server)

    first = _start(config_uri, env, tmp_path / "first.log")
    marker = f"runs/r1/checkpoints/checkpoint-{SAVE_EVERY}/{COMPLETE_MARKER}"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and first.poll() is None:
        if s3.list_objects_v2(Bucket=s3_bucket, Prefix=marker).get("KeyCount"):
            break
        time.sleep(0.05)
    assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
    first.send_signal(signal.SIGTERM)  # preemption, mid-run
    assert first.wait(timeout=120) == 143, (tmp_path / "first.log").read_text()[-3000:]
    log = (tmp_path / "first.log").read_text()
    assert "SIGTERM: stopped at step" in log and "Traceback" not in log
    stopped_at = int(log.split("SIGTERM: stopped at step ")[1].split("/")[0])
    assert SAVE_EVERY <= stopped_at < STEPS
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    assert latest_checkpoint(checkpoints) == f"checkpoint-{stopped_at}"  # saved on SIGTERM, not only every N
    for part in ("adapter_model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json"):
        assert s3.head_object(Bucket=s3_bucket, Key=f"runs/r1/checkpoints/checkpoint-{stopped_at}/{part}")

    # The same command again: resumes, finishes, and every step's loss is the uninterrupted one.
    second = _start(config_uri, env, tmp_path / "second.log")
    assert second.wait(timeout=300) == 0, (tmp_path / "second.log").read_text()[-3000:]
    result = json.loads((Path(config.output_dir) / "result.json").read_text())
    assert result["resumed_from_step"] == stopped_at
    losses = json.loads((Path(config.output_dir) / LOSSES_FILE).read_text())
    assert losses == pytest.approx(expected_losses, rel=1e-6, abs=1e-7)
    assert result["val_loss"] == pytest.approx(expected["val_loss"], rel=1e-5)

    # One MLflow run across both processes, each step logged once.
    client = MlflowClient(tracking_uri=config.mlflow_tracking_uri)
    history = client.get_metric_history(result["mlflow_run_id"], "train_loss")
    assert sorted(m.step for m in history) == list(range(1, STEPS + 1))
    assert client.get_run(result["mlflow_run_id"]).data.tags["preempted_at_step"] == str(stopped_at)
