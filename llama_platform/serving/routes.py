"""Routes the triage endpoint adds next to KServe's V1/V2 ones: OpenAI-compatible chat, the
maintainers' page and its JSON call.

OpenAI mapping (KServe 0.21 registers its own /openai/v1/... routes only with vLLM, absent on CPU,
so these are served by the same FastAPI app, behind the same keys, queue and batcher; the MLServer
runtime registers the same two OpenAI routes as custom handlers):

- `GET /v1/models` lists the served model in OpenAI's shape (`{"object": "list", "data": [...]}`)
  and, in the same body, KServe V1's `{"models": [...]}`: one path, both clients satisfied.
- `POST /v1/chat/completions`: the last `user` message is the issue. Lines starting `Repo:`,
  `Title:` and `Body:` fill those fields; otherwise the first line is the title and the rest the
  body. The repo may also come as `metadata={"repo": "owner/name"}` (OpenAI's metadata field).
  The answer's content is the model's completion, the labels joined by ", " (what training taught
  it to write after "Labels:"), chosen by scoring, so `temperature`, `top_p` and `seed` change
  nothing; a `triage` field adds the scores and the repo context. With `stream: true` the answer
  comes as server-sent `chat.completion.chunk` events (role, one chunk per label, finish) and
  `data: [DONE]`.
- `POST /v1/triage` {"title", "body"?, "repo"} -> labels, scores, repo context and the model's
  provenance: what the page shows.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from llama_platform.serving.page import PAGE_HTML
from llama_platform.serving.triage import BadRequest, Overloaded, TriageService, parse_instance


def _openai_error(status: int, message: str, param: str | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": None}},
                        status_code=status)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if parts and all(isinstance(p, str) for p in parts):
            return "\n".join(parts)
    raise BadRequest("messages[].content must be a string or a list of text parts")


def chat_instance(body: Any) -> dict:
    """The issue instance a chat completion request describes (see the module docstring)."""
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object with 'model' and 'messages'")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list")
    if any(not isinstance(m, dict) or not isinstance(m.get("role"), str) for m in messages):
        raise BadRequest("each message must be an object with a 'role'")
    users = [m for m in messages if m["role"] == "user"]
    if not users:
        raise BadRequest("no message with role 'user': send the issue as the user message")
    text = _message_text(users[-1].get("content"))
    fields: dict[str, str] = {}
    rest: list[str] = []
    for line in text.splitlines():
        head, sep, value = line.partition(":")
        key = head.strip().lower()
        if sep and key in ("repo", "title", "body") and key not in fields:
            fields[key] = value.strip()
        elif "body" in fields:
            fields["body"] += "\n" + line
        else:
            rest.append(line)
    if "title" not in fields:
        lines = [l for l in rest if l.strip()]
        if not lines:
            raise BadRequest("the user message is empty: send the issue's title (and body)")
        fields["title"] = lines[0].strip()
        fields.setdefault("body", "\n".join(lines[1:]))
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise BadRequest("'metadata' must be an object of strings")
    repo = (metadata or {}).get("repo") or fields.get("repo")
    if not repo:
        raise BadRequest("name the repository: metadata={'repo': 'owner/name'} or a 'Repo: owner/name' line")
    return parse_instance({"title": fields["title"], "body": fields.get("body", ""), "repo": repo}, 0)


def models_body(model_name: str, created: int) -> dict:
    card = {"id": model_name, "object": "model", "created": created, "owned_by": "llama-platform"}
    return {"object": "list", "data": [card], "models": [model_name]}


async def chat_completions(service: TriageService, model_name: str, request: Request) -> Response:
    """POST /v1/chat/completions, for either runtime (the MLServer one registers it as a custom handler)."""
    try:
        body = await _json_body(request)
        if isinstance(body, dict) and body.get("model") not in (model_name, None):
            return _openai_error(404, f"model {body.get('model')!r} not found; this endpoint serves {model_name!r}",
                                 "model")
        instance = chat_instance(body)
        (result,) = await service.predict([instance])
    except BadRequest as exc:
        return _openai_error(400, str(exc))
    except Overloaded as exc:
        response = _openai_error(503, str(exc))
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    labels = result["labels"]
    triage = {**result, "context": instance.get("features") or {}}
    cid, now = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    if not body.get("stream"):
        return JSONResponse({
            "id": cid, "object": "chat.completion", "created": now, "model": model_name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": ", ".join(labels)},
                         "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            "triage": triage,
        })

    def chunk(delta: dict, finish: str | None = None, extra: dict | None = None) -> str:
        event = {"id": cid, "object": "chat.completion.chunk", "created": now, "model": model_name,
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
                 **(extra or {})}
        return f"data: {json.dumps(event)}\n\n"

    async def events():
        yield chunk({"role": "assistant", "content": ""})
        for i, label in enumerate(labels):
            yield chunk({"content": (", " if i else "") + label})
        yield chunk({}, "stop", {"triage": triage})
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def build_router(service: TriageService, model_name: str) -> APIRouter:
    router = APIRouter()
    created = int(time.time())

    @router.get("/v1/models")
    async def list_models() -> dict:
        return models_body(model_name, created)

    @router.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await chat_completions(service, model_name, request)

    @router.post("/v1/triage")
    async def triage(request: Request):
        try:
            instance = parse_instance(await _json_body(request), 0)
            (result,) = await service.predict([instance])
        except BadRequest as exc:
            return JSONResponse({"error": str(exc).replace("instances[0].", "")}, status_code=400)
        return {**result, "repo": instance["repo"], "context": instance.get("features") or {},
                "model": {"name": model_name, **service.info}}

    @router.get("/ui", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        # The shell holds no data; a strict CSP keeps the page from loading or sending anything elsewhere.
        return HTMLResponse(PAGE_HTML, headers={
            "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                                       "connect-src 'self'; form-action 'none'; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
        })

    return router
