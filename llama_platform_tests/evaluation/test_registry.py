"""The gate's decision recorded in a real MLflow registry (sqlite): `champion` moves only on promote."""

from __future__ import annotations

import json

import pytest

from llama_platform.assets.evaluation import CANDIDATE, CHAMPION, _record_decision, _version_by_alias
from llama_platform.evaluation.gate import Decision
from llama_platform.resources.mlflow import MLflowResource

NAME = "triage-registry-test"


def test_champion_moves_only_on_promote(tmp_path):
    mlflow = MLflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", registered_model_name=NAME)
    client = mlflow.client()
    client.create_registered_model(NAME)
    (tmp_path / "m").mkdir()
    v1 = client.create_model_version(NAME, source=str(tmp_path / "m")).version
    v2 = client.create_model_version(NAME, source=str(tmp_path / "m")).version
    assert _version_by_alias(client, NAME, CHAMPION) is None
    assert _version_by_alias(client, "no-such-model", CHAMPION) is None

    _record_decision(client, NAME, v1, Decision(True, ["beats h2o", "no champion yet"]), 0.71)
    assert _version_by_alias(client, NAME, CHAMPION).version == v1
    first = client.get_model_version(NAME, v1)
    assert first.tags["gate.decision"] == "promote" and first.tags["gate.test_micro_f1"] == "0.7100"
    assert json.loads(first.tags["gate.reasons"]) == ["beats h2o", "no champion yet"]
    assert first.description.startswith("Promotion gate: PROMOTE")

    client.set_registered_model_alias(NAME, CANDIDATE, v2)
    client.update_model_version(NAME, v2, description="Trained on snapshot abc by run r1.")
    _record_decision(client, NAME, v2, Decision(False, ["does not beat champion"]), 0.65)
    _record_decision(client, NAME, v2, Decision(False, ["does not beat champion"]), 0.65)  # re-evaluated
    assert _version_by_alias(client, NAME, CHAMPION).version == v1  # unchanged
    second = client.get_model_version(NAME, v2)
    assert second.tags["gate.decision"] == "refuse" and CANDIDATE in second.aliases
    assert "REFUSE: does not beat champion" in second.description
    # where the version came from stays; the verdict follows it once
    assert second.description.startswith("Trained on snapshot abc") and second.description.count("Promotion gate:") == 1


@pytest.mark.slow  # trains a tiny model (a few steps) to register a real version
def test_champion_is_downloaded_and_scored(tmp_path):
    import numpy as np

    from llama_platform.assets.evaluation import score_alias
    from llama_platform.training.config import TrainConfig
    from llama_platform.training.train import train
    from llama_platform_tests.training.synthetic import write_synthetic_training_set

    data = write_synthetic_training_set(tmp_path / "ts.parquet", n=40)
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = train(TrainConfig(training_set_path=str(data), output_dir=str(tmp_path / "out"), mlflow_tracking_uri=tracking,
                               registered_model_name=NAME, max_steps=2, batch_size=8, seq_len=160, hidden_size=32,
                               num_layers=2, vocab_size=400), log=lambda m: None, show_progress=False)
    mlflow = MLflowResource(tracking_uri=tracking, registered_model_name=NAME)
    client = mlflow.client()
    client.set_registered_model_alias(NAME, CHAMPION, str(result["model_version"]))
    prompts = ["Triage this issue.\nTitle: crash\nLabels:", "Triage this issue.\nTitle: docs typo\nLabels:"]
    pred = score_alias(mlflow, CHAMPION, prompts)
    assert pred.name == CHAMPION and pred.scores.shape == (2, 4)
    assert np.allclose(pred.scores.sum(axis=1), 1.0, atol=1e-5) and pred.predicted.any(axis=1).all()
    with pytest.raises(Exception, match="alias|not found|RESOURCE_DOES_NOT_EXIST"):
        score_alias(mlflow, "no-such-alias", prompts)
