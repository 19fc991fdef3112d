"""The triage predictor as an MLServer runtime: what a Seldon Core 2 `Server` runs.

Same `TriageService` as the KServe predictor (triage.py): same parsing, features, batcher and model,
so both runtimes give the same answers. Serves the Open Inference Protocol V2 (MLServer's own
/v2/models/<name>/infer) and, as custom handlers, KServe V1's /v1/models/<name>:predict and the
OpenAI-compatible /v1/chat/completions and /v1/models (routes.py).

model-settings.json:

    {"name": "llama4-triage", "implementation": "llama_platform.serving.mlserver_runtime.TriageRuntime",
     "parameters": {"uri": "<model dir>",            # or extra.model_uri / extra.registered_model
                    "extra": {"tracking_uri": "...", "batching": true, "max_batch": 32, "max_wait_ms": 10,
                              "max_queue": 256, "max_instances": 64}}}

MLServer 1.7 cannot share an environment with KServe 0.21 (MLServer needs fastapi<0.116, hence
starlette<0.47; KServe needs starlette>=1.3.1), so it runs from its own venv (`make mlserver-env`),
as it runs in its own image in the cluster. API keys, rate limits and body limits for this runtime
are the mesh's job in Seldon Core 2 (Envoy in front of every Server); the queue bound is here.
MLServer's own adaptive batching stays off: the shared batcher does it, the same way in both runtimes.
"""

from __future__ import annotations

import importlib
import time
import uuid
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from mlserver import MLModel
from mlserver.errors import MLServerError
from mlserver.handlers import custom_handler
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput

from llama_platform.serving.routes import chat_completions, models_body
from llama_platform.serving.triage import (
    BadRequest,
    Overloaded,
    ServiceLimits,
    TriageService,
    resolve_registered_model,
    v1_instances,
    v2_instances,
    v2_outputs,
)


def _flatten(data: Any) -> list:
    if isinstance(data, (list, tuple)):
        return [x for item in data for x in _flatten(item)]
    return [data]


def _load_object(spec: str):
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


class TriageRuntime(MLModel):
    async def load(self) -> bool:
        params = self.settings.parameters
        extra = dict((params.extra if params else None) or {})
        limits = ServiceLimits(
            batching=bool(extra.get("batching", True)), max_batch=int(extra.get("max_batch", 32)),
            max_wait_s=float(extra.get("max_wait_ms", 10.0)) / 1000, max_queue=int(extra.get("max_queue", 256)),
            max_instances=int(extra.get("max_instances", 64)),
        )
        model, model_uri, note = None, extra.get("model_uri"), ""
        if extra.get("model_factory"):  # a LabelModel class "module:Class" (tests, custom models)
            model = _load_object(extra["model_factory"])()
        elif extra.get("registered_model"):
            model_uri, note = resolve_registered_model(extra["registered_model"], extra["tracking_uri"])
        model_dir = params.uri if params and params.uri and model is None and not model_uri else None
        feature_lookup = _load_object(extra["feature_lookup"])() if extra.get("feature_lookup") else None
        self.service = TriageService(model=model, model_dir=model_dir, model_uri=model_uri,
                                     tracking_uri=extra.get("tracking_uri"), feature_lookup=feature_lookup,
                                     limits=limits, source_note=note)
        self.service.load()
        self._created = int(time.time())
        self.ready = True
        return self.ready

    async def _run(self, instances: list[dict]) -> list[dict]:
        try:
            return await self.service.predict(instances)
        except BadRequest as exc:
            raise MLServerError(str(exc), status_code=400) from None
        except Overloaded as exc:
            raise MLServerError(str(exc), status_code=503) from None

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        try:
            instances = v2_instances({i.name: _flatten(i.data.root) for i in payload.inputs},
                                     {i.name: str(getattr(i.datatype, "value", i.datatype)) for i in payload.inputs})
        except BadRequest as exc:
            raise MLServerError(str(exc), status_code=400) from None
        results = await self._run(instances)
        outputs = [ResponseOutput(name=o["name"], shape=o["shape"], datatype=o["datatype"], data=o["data"])
                   for o in v2_outputs(results)]
        return InferenceResponse(model_name=self.name, id=payload.id or str(uuid.uuid4()), outputs=outputs)

    @custom_handler(rest_path="/v1/models/{model_name}:predict")
    async def v1_predict(self, model_name: str, request: Request) -> dict:
        """KServe V1 on MLServer, so clients of either runtime send the same payloads."""
        if model_name != self.name:
            raise MLServerError(f"model {model_name!r} not found", status_code=404)
        try:
            instances = v1_instances(await request.body())
        except BadRequest as exc:
            raise MLServerError(str(exc), status_code=400) from None
        return {"predictions": await self._run(instances)}

    @custom_handler(rest_path="/v1/chat/completions")
    async def openai_chat(self, request: Request) -> Response:
        """OpenAI-compatible chat completions, the same handler as on the KServe app (routes.py)."""
        return await chat_completions(self.service, self.name, request)

    @custom_handler(rest_path="/v1/models", rest_method="GET")
    async def openai_models(self) -> dict:
        return models_body(self.name, self._created)
