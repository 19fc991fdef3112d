from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from llama_platform.training.config import TrainConfig
from llama_platform_tests.training.synthetic import write_synthetic_training_set

# Enough for the loss to fall from ~6 to ~1 (the model learns the answer format and the label
# prior); learning to read the labels off the text takes ~100 more steps (see the slow test).
SHORT_RUN_STEPS = 40


@pytest.fixture(scope="session")
def training_set_path(tmp_path_factory) -> Path:
    return write_synthetic_training_set(tmp_path_factory.mktemp("data") / "training_set.parquet", n=200)


@pytest.fixture(scope="session")
def training_set(training_set_path) -> pd.DataFrame:
    return pd.read_parquet(training_set_path)


def short_config(workdir: Path, training_set_path: Path, **overrides) -> TrainConfig:
    values = dict(
        training_set_path=str(training_set_path),
        output_dir=str(workdir / "out"),
        mlflow_tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}",
        mlflow_experiment="training-tests",
        registered_model_name="triage-test",
        run_name="short",
        tags={"purpose": "test"},
        max_steps=SHORT_RUN_STEPS,
        batch_size=16,
        seq_len=160,
        log_every=10,
        system_metrics_every_s=1.0,  # a short run still gets MLflow system metrics
    )
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, training_set_path):
    """One short in-process training run shared by the tests that inspect its outputs."""
    from llama_platform.training.train import train

    workdir = tmp_path_factory.mktemp("train")
    config = short_config(workdir, training_set_path)
    messages: list[str] = []
    result = train(config, log=messages.append, show_progress=False)
    return {"config": config, "result": result, "messages": messages, "workdir": workdir}
