"""The MLflow pyfunc face of a triage model, so `mlflow.pyfunc.load_model("models:/name/N")` works.

Logged as "models from code" (pyfunc_entry.py), so nothing is pickled. The logged model carries the whole model directory as the artifact "model_dir"; a serving process
can also fetch the files with `download_model_dir(model_uri, dst)` and `TriageModel.load()` them. Loading needs this package importable
(it is installed in the training and serving images).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlflow.pyfunc import PythonModel
import pandas as pd

from llama_platform.training.prompts import format_prompt

MODEL_DIR_ARTIFACT = "model_dir"


class TriagePyfunc(PythonModel):
    def load_context(self, context) -> None:
        from llama_platform.training.inference import TriageModel

        self.model = TriageModel.load(context.artifacts[MODEL_DIR_ARTIFACT])

    # No type hints on predict: MLflow would turn them into a (here unwanted) input schema.
    def predict(self, context, model_input, params=None):
        """Input: a DataFrame with a "prompt" column (or title/body/repo columns), or a list of prompts."""
        return self.model.predict(_prompts(model_input))


def _prompts(model_input: Any) -> list[str]:
    if isinstance(model_input, pd.DataFrame):
        if "prompt" in model_input.columns:
            return model_input["prompt"].astype(str).tolist()
        if {"title", "body", "repo"} <= set(model_input.columns):
            return [format_prompt(r.title, r.body, r.repo) for r in model_input.itertuples()]
        raise ValueError(f"expected a 'prompt' column or title/body/repo columns, got {list(model_input.columns)}")
    if isinstance(model_input, str):
        return [model_input]
    if isinstance(model_input, list) and all(isinstance(p, str) for p in model_input):
        return model_input
    raise ValueError(f"unsupported model input of type {type(model_input).__name__}")


PYFUNC_ENTRY = Path(__file__).with_name("pyfunc_entry.py")


def download_model_dir(model_uri: str, dst_path: str | Path, tracking_uri: str | None = None) -> Path:
    """Download a logged/registered triage model and return its model directory (for TriageModel.load).

    MLflow stores the "model_dir" artifact under the source folder's name, so the path is read
    from the MLmodel file rather than guessed.
    """
    import mlflow
    from mlflow.models import Model

    # MLflow 3.17 resolves a models:/ name through the *global* registry URI (the tracking_uri
    # argument is not enough), so point the globals at it for the call and restore them after.
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dst_path)))
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
    flavor = Model.load(str(local / "MLmodel")).flavors.get("python_function", {})
    try:
        relative = flavor["artifacts"][MODEL_DIR_ARTIFACT]["path"]
    except KeyError as exc:
        raise ValueError(f"{model_uri} is not a triage model (no {MODEL_DIR_ARTIFACT!r} artifact)") from exc
    return local / relative
