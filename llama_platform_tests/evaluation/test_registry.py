"""The gate's decision recorded in a real MLflow registry (sqlite): `champion` moves only on promote."""

from __future__ import annotations

import json

from llama_platform.assets.evaluation import CANDIDATE, CHAMPION, _client, _record_decision, _version_by_alias
from llama_platform.evaluation.gate import Decision
from llama_platform.resources.mlflow import MLflowResource

NAME = "triage-registry-test"


def test_champion_moves_only_on_promote(tmp_path):
    mlflow = MLflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", registered_model_name=NAME)
    client = _client(mlflow)
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
    _record_decision(client, NAME, v2, Decision(False, ["does not beat champion"]), 0.65)
    assert _version_by_alias(client, NAME, CHAMPION).version == v1  # unchanged
    second = client.get_model_version(NAME, v2)
    assert second.tags["gate.decision"] == "refuse" and CANDIDATE in second.aliases
    assert "REFUSE: does not beat champion" in second.description
