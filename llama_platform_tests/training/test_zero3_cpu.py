"""The same entrypoint under torchrun with DeepSpeed ZeRO-3: two CPU processes (gloo), the
base sharded between them; rank 0 alone logs to MLflow and writes the result and model dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from llama_platform.services import free_port
from llama_platform_tests.training.conftest import short_config

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # DeepSpeed JIT-builds a CPU op on first use (~40 s), then ~1 min on 2 busy cores
def test_zero3_under_torchrun_on_cpu(tmp_path, training_set_path):
    pytest.importorskip("deepspeed")
    config = short_config(tmp_path, training_set_path, method="lora_zero3", max_steps=4, save_every=2,
                          registered_model_name=None, mlflow_system_metrics=False, eval_batch_size=8)
    config.save(tmp_path / "config.json")
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        ["env", "--default-signal=TERM,INT", sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
         "-m", "llama_platform.training.train", "--config", str(tmp_path / "config.json")],
        env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    result = json.loads((Path(config.output_dir) / "result.json").read_text())
    assert result["steps"] == 4 and result["device"].startswith("cpu")
    client = MlflowClient(tracking_uri=config.mlflow_tracking_uri)
    run = client.get_run(result["mlflow_run_id"])
    assert run.data.params["world_size"] == "2" and run.data.params["method"] == "lora_zero3"
    experiment = client.get_experiment_by_name(config.mlflow_experiment)
    assert len(client.search_runs([experiment.experiment_id])) == 1  # rank 1 logged nothing
    assert (Path(config.output_dir) / "model" / "adapter" / "adapter_config.json").is_file()
