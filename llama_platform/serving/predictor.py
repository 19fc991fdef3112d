"""The KServe predictor: issue title/body/repo in, labels and label probabilities out.

V1: POST /v1/models/<name>:predict  {"instances": [{"title", "body", "repo", "features"?}]}
    -> {"predictions": [{"labels": [...], "scores": {label: p}}]}
V2: POST /v2/models/<name>/infer with BYTES inputs "title", "body", "repo" (shape [N], "body" may be
    left out) -> outputs "labels" (BYTES [N], each a JSON list) and "scores" (FP32 [N, K], columns
    in the order of the "label_order" output, BYTES [K]).

A thin `kserve.Model` around the shared `TriageService` (triage.py), which the MLServer runtime
wraps the same way. Bad requests raise `InvalidInput`, which KServe answers with 400 and the message.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Callable

import kserve
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from llama_platform.serving.triage import (  # noqa: F401  (re-exported: callers import them from here)
    MAX_INSTANCES,
    BadRequest,
    LabelModel,
    ServiceLimits,
    TriageService,
    download_model,
    find_model_dir,
    v1_instances,
    v2_instances,
    v2_outputs,
)
from llama_platform.training.prompts import format_prompt


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
        limits: ServiceLimits | None = None,
        source_note: str = "",
    ):
        super().__init__(name)
        limits = limits or ServiceLimits(max_instances=max_instances)
        self.service = TriageService(
            model=model, model_dir=Path(model_dir) if model_dir else None, model_uri=model_uri,
            tracking_uri=tracking_uri, download_dir=Path(download_dir) if download_dir else None,
            prompt_fn=prompt_fn, feature_lookup=feature_lookup, limits=limits, source_note=source_note,
        )

    @property
    def model(self) -> LabelModel | None:
        return self.service.model

    def load(self) -> bool:
        self.service.load()
        self.ready = True
        return self.ready

    async def predict(
        self,
        payload: dict | InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict | InferResponse:
        try:
            if isinstance(payload, InferRequest):
                instances = v2_instances(
                    {i.name: _flat(i.data) for i in payload.inputs}, {i.name: i.datatype for i in payload.inputs}
                )
            else:
                instances = v1_instances(payload)
            results = await self.service.predict(instances)
        except BadRequest as exc:
            raise InvalidInput(str(exc)) from None
        if isinstance(payload, InferRequest):
            outputs = [InferOutput(o["name"], o["shape"], o["datatype"], o["data"]) for o in v2_outputs(results)]
            # KServe 0.21 needs a string id (FIELD-NOTES); echo the client's id when it sent one.
            return InferResponse(response_id=payload.id or str(uuid.uuid4()), model_name=self.name,
                                 infer_outputs=outputs)
        return {"predictions": results}


def _flat(data) -> list:
    import numpy as np

    return np.asarray(data, dtype=object).reshape(-1).tolist() if data is not None else []
