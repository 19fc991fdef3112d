"""Serve a real tiny Llama 4 triage model, trained and registered with llama_platform.training.

The server downloads it from an MLflow registry by `models:/name/version`, exactly as the
deployed_endpoint asset does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from llama_platform.serving.client import smoke_request
from llama_platform.services import free_port, start_service, wait_http_ok
from llama_platform.training.config import TrainConfig
from llama_platform.training.prompts import LABELS
from llama_platform.training.train import train
from llama_platform_tests.training.synthetic import write_synthetic_training_set

API_KEY = "real-model-key-5d2e8f"


def train_tiny(root, registered_model_name: str = "triage-serving-test") -> dict:
    """Train and register a tiny model (2 steps); train()'s result: model_uri, model_dir, ..."""
    config = TrainConfig(
        training_set_path=str(write_synthetic_training_set(root / "train.parquet", n=40)),
        output_dir=str(root / "out"),
        mlflow_tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        registered_model_name=registered_model_name,
        max_steps=2,
        batch_size=4,
        vocab_size=400,
    )
    return train(config, log=lambda _msg: None, show_progress=False)


@pytest.fixture(scope="module")
def registered_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("real-model")
    result = train_tiny(root)
    return root, f"sqlite:///{root / 'mlflow.db'}", result["model_uri"]


@pytest.mark.slow  # ~45 s: trains and registers a model, then starts torch in the server
def test_serves_a_registered_model_from_mlflow(registered_model):
    root, tracking_uri, model_uri = registered_model
    assert model_uri.startswith("models:/triage-serving-test/")
    port = free_port()
    cmd = [
        sys.executable, "-m", "llama_platform.serving.server",
        "--model-uri", model_uri, "--tracking-uri", tracking_uri,
        "--download-dir", str(root / "download"),
        "--name", "llama4-triage", "--host", "127.0.0.1", "--http-port", str(port),
    ]
    proc = start_service("kserve-real", cmd, root / "server.log", env={"LLAMA_PLATFORM_API_KEY": API_KEY})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{url}/v2/health/ready", proc, timeout=300)
        instances = [
            {"title": "the parser crashes on startup", "body": "Traceback and a segfault.", "repo": "acme/widgets"},
            {"title": "Docs: missing example", "repo": "octo/tools"},
        ]
        status, body = smoke_request(url, API_KEY, "llama4-triage", instances)
        assert status == 200, body
        assert len(body["predictions"]) == 2
        for pred in body["predictions"]:
            assert pred["labels"] and set(pred["labels"]) <= set(LABELS)
            assert set(pred["scores"]) == set(LABELS)
            assert sum(pred["scores"].values()) == pytest.approx(1.0, abs=1e-4)
        assert smoke_request(url, None, "llama4-triage", instances)[0] == 401
    finally:
        proc.stop()
    assert API_KEY not in (root / "server.log").read_text(errors="replace")


@pytest.mark.slow
def test_model_dir_uri_points_at_the_triage_model_directory(registered_model):
    from urllib.parse import urlparse

    from mlflow import MlflowClient

    from llama_platform.serving.triage import model_dir_uri

    root, tracking_uri, model_uri = registered_model
    uri = model_dir_uri(model_uri, tracking_uri)
    assert (Path(urlparse(uri).path) / "triage.json").is_file()
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    client.set_registered_model_alias("triage-serving-test", "champion", model_uri.rsplit("/", 1)[-1])
    assert model_dir_uri("models:/triage-serving-test@champion", tracking_uri) == uri
