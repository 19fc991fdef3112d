"""API-key protection for the model server: every route except liveness/readiness needs the key.

A plain ASGI middleware (not Starlette's BaseHTTPMiddleware) so it wraps every route KServe
registers, streaming ones included. The key is compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
import re

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

# Probes must work without a key (kubelet, load balancers, wait_http_ok): the server root, the
# V2 server health routes, and per-model readiness. Everything else, /metrics included, is protected.
OPEN_PATHS = re.compile(r"^/$|^/v2/health/(live|ready)$|^/v2/models/[^/]+(/versions/[^/]+)?/ready$")


def presented_key(headers: Headers) -> str | None:
    """The key from `Authorization: Bearer <key>` or `X-API-Key: <key>`, if either is present."""
    auth = headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    key = headers.get("x-api-key", "").strip()
    return key or None


def key_matches(presented: str | None, expected: str) -> bool:
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, api_key: str) -> None:
        if not api_key:
            raise ValueError("ApiKeyMiddleware needs a non-empty API key")
        self.app = app
        self._api_key = api_key

    def __repr__(self) -> str:  # never show the key, even in debug output
        return "ApiKeyMiddleware(api_key=***)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" or (scope["type"] == "http" and OPEN_PATHS.match(scope["path"])):
            await self.app(scope, receive, send)
            return
        if key_matches(presented_key(Headers(scope=scope)), self._api_key):
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # e.g. a websocket: refuse without a body
            await send({"type": "websocket.close", "code": 1008})
            return
        response = JSONResponse(
            {"error": "missing or invalid API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
        await response(scope, receive, send)
