"""The triage predictor as an MLServer runtime: what a Seldon Core 2 `Server` runs.

Same `TriageService` as the KServe predictor (triage.py): same parsing, features, batcher and model,
so both runtimes give the same answers. Serves the Open Inference Protocol V2 (MLServer's own
/v2/models/<name>/infer) and, as custom handlers, KServe V1's /v1/models/<name>:predict and the
OpenAI-compatible /v1/chat/completions and /v1/models (routes.py).

model-settings.json:

    {"name": "llama4-triage", "implementation": "llama_platform.serving.mlserver_runtime.TriageRuntime",
     "parameters": {"uri": ".",  # the model dir: absolute, or relative to this file; or extra.model_uri /
                                 # extra.registered_model
                    "extra": {"tracking_uri": "...", "batching": true, "max_batch": 32, "max_wait_ms": 10,
                              "max_queue": 256, "max_instances": 64,
                              "max_body_bytes": 1048576, "rate_per_s": 50, "burst": 100}}}

MLServer 1.7 cannot share an environment with KServe 0.21 (MLServer needs fastapi<0.116, hence
starlette<0.47; KServe needs starlette>=1.3.1), so it runs from its own venv (`make mlserver-env`),
as it runs in its own image in the cluster (deploy/docker/mlserver.Dockerfile).
MLServer's own adaptive batching stays off: the shared batcher does it, the same way in both runtimes.

Security, the same as the KServe app's (auth.py), defence in depth behind Seldon's Envoy, which does
not check our keys: the same keys file / env (LLAMA_PLATFORM_SERVING_KEYS_FILE, re-read on change, so
keys rotate without a restart), scopes, per-key rate limits, statuses and messages. This runtime
checks its own routes: V2 infer over REST and gRPC (MLServer hands the runtime the HTTP headers or
gRPC metadata as `payload.parameters.headers`, replacing whatever a client put there), KServe V1
predict, OpenAI chat completions and model list: 401 without a valid key, 403 for a key without
`predict` (Prometheus' `metrics` token), 429 with `Retry-After`, 413 over `max_body_bytes`. A model that finds
no key fails to load: it never serves unprotected. MLServer's own routes (metadata, repository,
/metrics), the body limit before MLServer parses a V2 body, and the headers of refusals on V2 are
the launcher's (mlserver_app.py, the image's command). Over gRPC, message size is bounded by
MLSERVER_GRPC_MAX_MESSAGE_LENGTH (set on the Seldon Server, k8s/serving.py).
"""

from __future__ import annotations

import importlib
import time
import uuid
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from mlserver import MLModel
from mlserver.errors import MLServerError
from mlserver.handlers import custom_handler
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput
from mlserver.utils import get_model_uri

from llama_platform.serving.auth import Gate, Refusal, keys_from_env, presented_key, too_large
from llama_platform.serving.mlserver_app import Refused
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


class _TooLarge(Exception):
    pass


def _load_object(spec: str):
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


class TriageRuntime(MLModel):
    async def load(self) -> bool:
        params = self.settings.parameters
        extra = dict((params.extra if params else None) or {})
        if self.settings.cache_enabled:  # a cached answer is given before predict, without checking keys
            raise MLServerError("the triage runtime refuses MLServer's response cache: set cache_enabled false")
        # Before the model: no keys -> no model (KeyFileError names what to set, never a key).
        self._gate = Gate(keys_from_env(), float(extra.get("rate_per_s", 50.0)), float(extra.get("burst", 100.0)))
        self._max_body_bytes = int(extra.get("max_body_bytes", 1 << 20))
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
        # parameters.uri: absolute, or relative to the model-settings.json (Seldon's layout: ".").
        model_dir = await get_model_uri(self.settings) if params and params.uri and model is None and not model_uri \
            else None
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
            raise Refused(503, str(exc), {"Retry-After": str(exc.retry_after)}) from None

    def _admit(self, headers: dict | None) -> None:
        """Key, scope (every route here needs `predict`), rate limit and the declared body size (as the
        KServe app checks them, in that order); raise Refused if not admitted."""
        headers = {str(k).lower(): v for k, v in (headers or {}).items()}
        verdict = self._gate.admit("predict", presented_key(headers))
        if isinstance(verdict, Refusal):
            raise Refused(verdict.status, verdict.message, verdict.headers)
        length = str(headers.get("content-length", ""))
        if length.isdigit() and int(length) > self._max_body_bytes:
            verdict = too_large(self._max_body_bytes)
            raise Refused(verdict.status, verdict.message)

    async def _admitted(self, request: Request) -> Request | Response:
        """For the custom handlers: the request with its body read (at most the limit), or the refusal."""
        try:
            self._admit(dict(request.headers))
            chunks, total = [], 0
            async for chunk in request.stream():
                total += len(chunk)
                if total > self._max_body_bytes:
                    raise _TooLarge()
                chunks.append(chunk)
        except Refused as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status_code, headers=exc.headers)
        except _TooLarge:
            verdict = too_large(self._max_body_bytes)
            return JSONResponse({"error": verdict.message}, status_code=verdict.status)
        body, sent = b"".join(chunks), False

        async def replay() -> dict:  # the handlers read the body again, as on the KServe app
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await request.receive()
        return Request(request.scope, replay)

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        self._admit(payload.parameters.headers if payload.parameters else None)
        try:
            instances = v2_instances({i.name: _flatten(i.data.root) for i in payload.inputs},
                                     {i.name: str(getattr(i.datatype, "value", i.datatype)) for i in payload.inputs})
        except BadRequest as exc:
            raise MLServerError(str(exc), status_code=400) from None
        results = await self._run(instances)
        # BYTES as bytes: gRPC needs them (str fails to encode), MLServer's JSON turns them back into strings.
        outputs = [ResponseOutput(name=o["name"], shape=o["shape"], datatype=o["datatype"],
                                  data=[x.encode() for x in o["data"]] if o["datatype"] == "BYTES" else o["data"])
                   for o in v2_outputs(results)]
        return InferenceResponse(model_name=self.name, id=payload.id or str(uuid.uuid4()), outputs=outputs)

    @custom_handler(rest_path="/v1/models/{model_name}:predict")
    async def v1_predict(self, model_name: str, request: Request):  # a dict, or the refusal
        """KServe V1 on MLServer, so clients of either runtime send the same payloads."""
        request = await self._admitted(request)
        if isinstance(request, Response):
            return request
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
        request = await self._admitted(request)
        if isinstance(request, Response):
            return request
        return await chat_completions(self.service, self.name, request)

    @custom_handler(rest_path="/v1/models", rest_method="GET")
    async def openai_models(self, request: Request):  # no return annotation: FastAPI would make it a response model
        request = await self._admitted(request)
        if isinstance(request, Response):
            return request
        return models_body(self.name, self._created)
