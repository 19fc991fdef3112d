"""The KServe predictor: issue title/body/repo in, labels and label probabilities out.

V1: POST /v1/models/<name>:predict  {"instances": [{"title", "body", "repo", "features"?}]}
    -> {"predictions": [{"labels": [...], "scores": {label: p}}]}
V2: POST /v2/models/<name>/infer with BYTES inputs "title", "body", "repo" (shape [N], "body" may be
    left out) -> outputs "labels" (BYTES [N], each a JSON list) and "scores" (FP32 [N, K], columns
    in the order of the "label_order" output, BYTES [K]).

The model is anything with `predict(prompts) -> [{"labels", "scores"}]` (a `TriageModel` in
production); it is given directly, or loaded from a local model directory or an MLflow model URI.
Bad requests raise `InvalidInput`, which KServe answers with 400 and the message.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

import kserve
import numpy as np
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from llama_platform.training.prompts import format_prompt

MAX_INSTANCES = 64
META_FILE = "triage.json"  # marks a triage model directory (see training/inference.py)


class LabelModel(Protocol):
    def predict(self, prompts: Sequence[str]) -> list[dict]: ...


def find_model_dir(root: Path) -> Path:
    """The one directory under `root` (itself included) holding a triage model's triage.json."""
    found = sorted({p.parent for p in Path(root).rglob(META_FILE)})
    if len(found) != 1:
        raise FileNotFoundError(
            f"expected exactly one triage model ({META_FILE}) under {root}, found {[str(p) for p in found]}"
        )
    return found[0]


def download_model(model_uri: str, tracking_uri: str | None, dst_dir: Path | None = None) -> Path:
    """Fetch an MLflow model (e.g. models:/name/3 or models:/name@champion) and return its model dir."""
    import mlflow

    dst = Path(dst_dir or tempfile.mkdtemp(prefix="triage-model-"))
    # MLflow 3.17 resolves the registered name of a models:/ URI through the *global* registry URI,
    # ignoring download_artifacts(registry_uri=...), so point the globals at it for the call.
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dst))
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
    return find_model_dir(Path(local))


class TriagePredictor(kserve.Model):
    def __init__(
        self,
        name: str,
        model: LabelModel | None = None,
        model_dir: str | Path | None = None,
        model_uri: str | None = None,
        tracking_uri: str | None = None,
        download_dir: str | Path | None = None,
        prompt_fn: Callable[..., str] = format_prompt,
        max_instances: int = MAX_INSTANCES,
        feature_lookup: Callable[[list[str]], list[dict]] | None = None,
    ):
        super().__init__(name)
        if model is None and not model_dir and not model_uri:
            raise ValueError("TriagePredictor needs a model, a model_dir or a model_uri")
        self.model = model
        self.model_dir = Path(model_dir) if model_dir else None
        self.model_uri = model_uri
        self.tracking_uri = tracking_uri
        self.download_dir = Path(download_dir) if download_dir else None
        self.prompt_fn = prompt_fn
        self.max_instances = max_instances
        # Fills in the repo features training prompts had, for instances that bring none.
        self.feature_lookup = feature_lookup

    def load(self) -> bool:
        if self.model is None:
            from llama_platform.training.inference import TriageModel  # torch: only when needed

            model_dir = self.model_dir or download_model(self.model_uri, self.tracking_uri, self.download_dir)
            self.model = TriageModel.load(model_dir)
        self.ready = True
        return self.ready

    async def predict(
        self,
        payload: dict | InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict | InferResponse:
        if isinstance(payload, InferRequest):
            instances = _v2_instances(payload)
        else:
            instances = _v1_instances(payload)
        if len(instances) > self.max_instances:
            raise InvalidInput(f"at most {self.max_instances} instances per request, got {len(instances)}")
        if self.feature_lookup is not None:
            missing = [i for i in instances if i.get("features") is None]
            looked_up = await asyncio.to_thread(self.feature_lookup, [i["repo"] for i in missing])
            for inst, feats in zip(missing, looked_up):
                inst["features"] = feats
        prompts = [self.prompt_fn(i["title"], i["body"], i["repo"], i.get("features")) for i in instances]
        # The model is CPU/GPU-bound: keep the event loop free for health probes meanwhile.
        results = await asyncio.to_thread(self.model.predict, prompts)
        if isinstance(payload, InferRequest):
            return self._v2_response(payload, results)
        return {"predictions": [{"labels": list(r["labels"]), "scores": dict(r["scores"])} for r in results]}

    def _v2_response(self, request: InferRequest, results: list[dict]) -> InferResponse:
        order = list(results[0]["scores"]) if results else []
        scores = np.array([[r["scores"][l] for l in order] for r in results], dtype=np.float32).reshape(len(results), len(order))
        outputs = [
            InferOutput("labels", [len(results)], "BYTES", [json.dumps(r["labels"]) for r in results]),
            InferOutput("scores", list(scores.shape), "FP32", scores.flatten().tolist()),
            InferOutput("label_order", [len(order)], "BYTES", order),
        ]
        # KServe 0.21 needs a string id (FIELD-NOTES); echo the client's id when it sent one.
        return InferResponse(
            response_id=request.id or str(uuid.uuid4()), model_name=self.name, infer_outputs=outputs
        )


def _text(value: Any, field: str, index: int, required: bool) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidInput(f"instances[{index}].{field} must be a non-empty string" if required
                           else f"instances[{index}].{field} must be a string")
    return value


def _instance(raw: Any, index: int) -> dict:
    if not isinstance(raw, Mapping):
        raise InvalidInput(f"instances[{index}] must be an object with title, body and repo")
    features = raw.get("features")
    if features is not None and not isinstance(features, Mapping):
        raise InvalidInput(f"instances[{index}].features must be an object of name: value")
    return {
        "title": _text(raw.get("title"), "title", index, required=True),
        "body": _text(raw.get("body"), "body", index, required=False),
        "repo": _text(raw.get("repo"), "repo", index, required=True),
        "features": dict(features) if features else None,
    }


def _v1_instances(payload: Any) -> list[dict]:
    if isinstance(payload, (bytes, str)):
        # KServe hands over the raw body when the content type is not JSON (e.g. curl -d).
        try:
            payload = json.loads(payload)
        except ValueError as exc:
            raise InvalidInput(f"request body is not valid JSON: {exc}") from None
    if not isinstance(payload, Mapping) or "instances" not in payload:
        raise InvalidInput('expected a JSON object {"instances": [{"title": ..., "body": ..., "repo": ...}]}')
    instances = payload["instances"]
    if not isinstance(instances, list) or not instances:
        raise InvalidInput('"instances" must be a non-empty list')
    return [_instance(raw, i) for i, raw in enumerate(instances)]


def _strings(data: Any, name: str) -> list[str]:
    values = np.asarray(data, dtype=object).reshape(-1).tolist() if data is not None else []
    out = []
    for v in values:
        if isinstance(v, bytes):
            v = v.decode("utf-8", errors="replace")
        if not isinstance(v, str):
            raise InvalidInput(f"input {name!r} must hold strings (datatype BYTES)")
        out.append(v)
    return out


def _v2_instances(request: InferRequest) -> list[dict]:
    columns = {}
    for inp in request.inputs:
        if inp.datatype != "BYTES":
            raise InvalidInput(f"input {inp.name!r} must have datatype BYTES, got {inp.datatype}")
        columns[inp.name] = _strings(inp.data, inp.name)
    missing = [n for n in ("title", "repo") if n not in columns]
    if missing:
        raise InvalidInput(f"missing inputs {missing}: send BYTES inputs 'title', 'repo' and optionally 'body'")
    n = len(columns["title"])
    if n == 0:
        raise InvalidInput("inputs are empty")
    columns.setdefault("body", [""] * n)
    lengths = {k: len(columns[k]) for k in ("title", "body", "repo")}
    if len(set(lengths.values())) != 1:
        raise InvalidInput(f"inputs 'title', 'body' and 'repo' must have the same length, got {lengths}")
    return [
        _instance({k: columns[k][i] for k in ("title", "body", "repo")}, i) for i in range(n)
    ]
