"""Start MLServer behind the endpoint's front door: the MLServer image's command.

    python -m llama_platform.serving.mlserver_app [--max-body-bytes N] [--rate-per-s R] [--burst B] start <models dir>

(after our options, the same arguments as `mlserver`). Keys come from the same env / mounted Secret
file as the KServe server (auth.keys_from_env); without any, it refuses to start.

Who checks what (MLServer 1.7 has no hook for ASGI middleware or exception handlers, so `install`
adds them to the apps MLServer builds, before it builds them):

- The triage runtime's routes (V2 infer, KServe V1 predict, OpenAI chat and model list): the runtime
  checks key, scope and rate limit itself (mlserver_runtime.py), because V2 infer also arrives over
  gRPC, where no ASGI middleware runs. Here they get the body limit, enforced before MLServer parses
  a body (Content-Length or chunked), and the request metrics.
- MLServer's own REST routes, which run no runtime code: server and model metadata and docs need the
  `predict` scope, the model repository API (`/v2/repository/...`) `admin`, as on KServe. Seldon
  Core 2's agent drives the repository over gRPC (its OIP control-plane client is gRPC-only), which
  this does not touch.
- Liveness/readiness (`/v2/health/*`, `/v2/models/<m>/ready`) stay open for the kubelet and the agent.
- The metrics port's `/metrics` needs `metrics` (Prometheus' token; `admin` implies it), as the KServe app's does.
- Compressed request bodies are refused (415): MLServer would inflate them past the body limit.

V2's streaming routes (`infer_stream`, `generate_stream`) are checked by the runtime too, but there a
refusal can only break the stream MLServer has already answered 200 (a classifier has no use for them).

Refusals the runtime raises on V2 (`Refused`) keep their headers (`Retry-After`, `WWW-Authenticate`):
MLServer renders its exceptions without headers, so an exception handler for `Refused` is added to
the ones MLServer gives its app, and the gRPC status codes for 401/403/413/429/503 (MLServer maps
only 400/404/422/500 and calls the rest UNKNOWN).

Kept apart from mlserver_runtime.py because MLServer re-imports (reloads) a runtime's module on every
model load, which would make a new `Refused` class each time.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Sequence

import grpc
from fastapi import FastAPI, Request
from mlserver.errors import MLServerError
from mlserver.grpc import utils as grpc_utils
from mlserver.metrics.server import MetricsServer
from mlserver.rest import errors as rest_errors
from mlserver.rest import server as rest_server
from mlserver.rest.responses import Response
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from llama_platform.serving.auth import KeyFileError, KeyStore, SecurityMiddleware, keys_from_env
from llama_platform.serving.logs import configure_logging

# The routes the triage runtime serves and checks itself (mlserver_runtime.py).
RUNTIME_PATHS = re.compile(
    r"^/v2/models/[^/]+(/versions/[^/]+)?/(infer|generate)(_stream)?$"
    r"|^/v1/models/[^/]+:predict$|^/v1/chat/completions$|^/v1/models$"
)

_GRPC_CODES = {
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}


class Refused(MLServerError):
    """A request refused before the model (auth.Refusal as an exception MLServer knows)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message, status_code=status)
        self.headers = dict(headers or {})


async def _refused(_: Request, exc: Refused) -> Response:
    # The same body as MLServer's own errors and the KServe app's refusals: {"error": message}.
    return Response(status_code=exc.status_code, content={"error": str(exc)}, headers=exc.headers)


class NoCompressedBodies:
    """MLServer gunzips `Content-Encoding: gzip` request bodies whole, after the body limit has seen
    only the compressed bytes (a 1 MiB bomb inflates to ~1 GiB), so compressed bodies are refused."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            encoding = Headers(scope=scope).get("content-encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):
                await JSONResponse({"error": f"compressed request bodies ({encoding}) are not accepted: send them "
                                             "uncompressed"}, status_code=415)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install(keys: KeyStore, max_body_bytes: int = 1 << 20, rate_per_s: float = 50.0, burst: float = 100.0) -> None:
    """Wire the front door into the MLServer apps built after this call (in this process)."""
    rest_errors._EXCEPTION_HANDLERS.setdefault(Refused, _refused)
    for status, code in _GRPC_CODES.items():
        grpc_utils.STATUS_CODE_MAPPING.setdefault(status, code)

    def guarded(app: FastAPI, checked_by_app: re.Pattern | None = None) -> FastAPI:
        # add_middleware puts each outermost: keys and limits first, then no compressed bodies, then MLServer's.
        app.add_middleware(NoCompressedBodies)
        app.add_middleware(SecurityMiddleware, keys=keys, max_body_bytes=max_body_bytes, rate_per_s=rate_per_s,
                           burst=burst, checked_by_app=checked_by_app)
        return app

    create_app, get_metrics_app = rest_server.create_app, MetricsServer._get_app
    rest_server.create_app = lambda *a, **kw: guarded(create_app(*a, **kw), RUNTIME_PATHS)
    MetricsServer._get_app = lambda self: guarded(get_metrics_app(self))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m llama_platform.serving.mlserver_app",
                                description="mlserver, behind the triage endpoint's keys, scopes and limits")
    p.add_argument("--max-body-bytes", type=int, default=1 << 20)
    p.add_argument("--rate-per-s", type=float, default=50.0, help="default per-key rate (MLServer's own routes)")
    p.add_argument("--burst", type=float, default=100.0)
    args, mlserver_args = p.parse_known_args(sys.argv[1:] if argv is None else argv)
    configure_logging()
    try:
        keys = keys_from_env()
    except KeyFileError as exc:
        print(f"error: {exc}; the server refuses to start unprotected", file=sys.stderr)
        return 2
    install(keys, args.max_body_bytes, args.rate_per_s, args.burst)
    from mlserver.cli.main import main as mlserver_main

    sys.argv = [p.prog, *mlserver_args]
    mlserver_main()
    return 0


if __name__ == "__main__":
    # Run as a module this file is `__main__`; the runtime imports `llama_platform.serving.mlserver_app`,
    # a second copy with its own `Refused`: install that one's.
    from llama_platform.serving import mlserver_app

    sys.exit(mlserver_app.main())
