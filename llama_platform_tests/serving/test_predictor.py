"""The predictor in-process: request parsing and model-directory discovery."""

from __future__ import annotations

import asyncio

import pytest
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest

from llama_platform.serving.predictor import TriagePredictor, find_model_dir
from llama_platform_tests.serving.keyword_server import KeywordModel


class RecordingModel(KeywordModel):
    def __init__(self):
        self.prompts: list[str] = []

    def predict(self, prompts):
        self.prompts.extend(prompts)
        return super().predict(prompts)


def test_v1_instances_become_prompts_with_features():
    model = RecordingModel()
    p = TriagePredictor("m", model=model)
    assert p.load() and p.ready
    out = asyncio.run(p.predict({"instances": [{"title": "Docs typo", "repo": "a/b", "features": {"body_len": 12}}]}))
    assert out["predictions"][0]["labels"] == ["docs"]
    (prompt,) = model.prompts
    assert "Repo: a/b" in prompt and "Title: Docs typo" in prompt and "body_len: 12" in prompt
    assert prompt.endswith("Labels:")


def test_v2_inputs_must_line_up():
    p = TriagePredictor("m", model=KeywordModel())
    req = InferRequest(
        model_name="m",
        infer_inputs=[
            InferInput("title", [2], "BYTES", ["a", "b"]),
            InferInput("body", [1], "BYTES", ["x"]),
            InferInput("repo", [2], "BYTES", ["r/1", "r/2"]),
        ],
    )
    with pytest.raises(InvalidInput, match="same length"):
        asyncio.run(p.predict(req))


def test_predictor_needs_a_model_source():
    with pytest.raises(ValueError, match="model_dir or a model_uri"):
        TriagePredictor("m")


def test_find_model_dir(tmp_path):
    (tmp_path / "artifacts" / "model_dir").mkdir(parents=True)
    (tmp_path / "artifacts" / "model_dir" / "triage.json").write_text("{}")
    assert find_model_dir(tmp_path) == tmp_path / "artifacts" / "model_dir"
    with pytest.raises(FileNotFoundError, match="exactly one"):
        find_model_dir(tmp_path / "artifacts" / "nothing-here")


def test_champion_alias_or_the_newest_version(tmp_path):
    from mlflow import MlflowClient

    from llama_platform.serving.triage import resolve_registered_model

    uri = f"sqlite:///{tmp_path / 'registry.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("triage")
    with pytest.raises(FileNotFoundError, match="no versions"):
        resolve_registered_model("triage", uri)
    for _ in range(3):
        client.create_model_version("triage", source=str(tmp_path / "model"))
    model_uri, note = resolve_registered_model("triage", uri)
    assert model_uri == "models:/triage/3" and "no 'champion' alias" in note and "newest version 3" in note
    client.set_registered_model_alias("triage", "champion", "2")
    assert resolve_registered_model("triage", uri) == ("models:/triage@champion", "alias 'champion' -> version 2")
