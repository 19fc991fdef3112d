"""Run the triage predictor in a KServe ModelServer on one host, behind API keys.

    LLAMA_PLATFORM_API_KEY=... python -m llama_platform.serving.server \\
        (--model-dir DIR | --model-uri models:/name/version | --registered-model NAME) \\
        --tracking-uri URI --name llama4-triage --host 127.0.0.1 --http-port 8080

Keys come only from the environment or a mounted file (never the command line, where `ps` would
show them): LLAMA_PLATFORM_SERVING_KEYS_FILE (hashed keys, re-read on change),
LLAMA_PLATFORM_SERVING_KEYS (the same JSON) and/or LLAMA_PLATFORM_API_KEY (one plain key).
`--registered-model` serves the registry alias `champion`, or the newest version until one is set.

Beside KServe's V1/V2 routes the app serves /v1/chat/completions, /v1/models (OpenAI-compatible,
see routes.py), /v1/triage and the maintainers' page at /ui.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import Sequence

# Note: kserve.model_server parses sys.argv with parse_known_args when imported. Our flags use
# dashes and are no prefix of its underscore flags, so it ignores them.
from kserve import Model, ModelServer, model_server
from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING
from kserve.protocol.rest.server import RESTServer
from starlette.requests import Request
from starlette.responses import JSONResponse

from llama_platform import settings
from llama_platform.serving.auth import KeyFileError, KeyStore, SecurityMiddleware, keys_from_env
from llama_platform.serving.logs import configure_logging
from llama_platform.serving.predictor import TriagePredictor
from llama_platform.serving.routes import build_router
from llama_platform.serving.triage import Overloaded, ServiceLimits, resolve_registered_model

DEFAULT_MODEL_NAME = "llama4-triage"
log = logging.getLogger(__name__)


class HostBoundModelServer(ModelServer):
    """A single-process, REST-only ModelServer listening on `host`.

    KServe 0.21's RESTServer hard-codes host 0.0.0.0 in its uvicorn config; this sets that one
    field and otherwise starts the REST server the way ModelServer.start does for one worker.
    """

    def __init__(self, host: str, http_port: int):
        super().__init__(http_port=http_port, enable_grpc=False, workers=1)
        self.host = host

    def start(self, models: list[Model]) -> None:
        self._register_and_check_atleast_one_model_is_ready(models)
        self._rest_server = RESTServer(
            FASTAPI_APP_IMPORT_STRING,
            self.dataplane,
            self.model_repository_extension,
            self.http_port,
            access_log_format=self.access_log_format,
            workers=1,
            grace_period=self.grace_period,
            event_loop=self.event_loop,
            timeout_keep_alive=self.timeout_keep_alive,
        )
        self._rest_server.config.host = self.host
        self.servers.append(self._rest_server.start())
        self.setup_event_loop()
        self.register_signal_handler()
        asyncio.run(self._serve())


async def _overloaded(_: Request, exc: Overloaded) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=503, headers={"Retry-After": str(exc.retry_after)})


def serve(model: TriagePredictor, keys: KeyStore | str, host: str = "127.0.0.1", http_port: int = 8080,
          max_body_bytes: int = 1 << 20, rate_per_s: float = 50.0, burst: float = 100.0) -> None:
    """Block serving `model` (already loaded) until SIGTERM/SIGINT."""
    configure_logging()
    if isinstance(keys, str):
        keys = KeyStore(plain_key=keys)  # raises without a key: never serve unprotected
    app = model_server.app
    # Added before KServe registers its routes at start, so ours match first (/v1/models included).
    app.include_router(build_router(model.service, model.name))
    app.add_exception_handler(Overloaded, _overloaded)
    app.add_middleware(SecurityMiddleware, keys=keys, max_body_bytes=max_body_bytes,
                       rate_per_s=rate_per_s, burst=burst)
    HostBoundModelServer(host=host, http_port=http_port).start([model])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m llama_platform.serving.server", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model-dir", help="a local triage model directory (written by training)")
    src.add_argument("--model-uri", help="an MLflow model URI, e.g. models:/llama4-issue-triage/3")
    src.add_argument("--registered-model", help="a registered model name: serve its 'champion' alias")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (needed with --model-uri/--registered-model)")
    p.add_argument("--name", default=DEFAULT_MODEL_NAME, help="model name in the endpoint paths")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--http-port", type=int, default=8080)
    p.add_argument("--download-dir", help="where to put a downloaded model (default: a temp dir)")
    p.add_argument("--feature-repo", help="a Feast repo dir: look up the prompts' repo features online")
    p.add_argument("--model-source", default="", help="how the model was chosen (shown on the page and /v1/triage)")
    g = p.add_argument_group("batching and limits")
    g.add_argument("--no-batching", action="store_true", help="one model call per request")
    g.add_argument("--max-batch", type=int, default=32, help="prompts per model call at most")
    g.add_argument("--max-wait-ms", type=float, default=0.0,
                   help="how long a batch may wait to fill up while a worker is idle (0: start at once)")
    g.add_argument("--batch-workers", type=int, default=None,
                   help="model calls at once, batching or not (default: 1 on a GPU, one per core on a CPU)")
    g.add_argument("--max-queue", type=int, default=256, help="prompts queued or running; more get 503")
    g.add_argument("--max-instances", type=int, default=64, help="instances per request at most")
    g.add_argument("--max-body-bytes", type=int, default=1 << 20)
    g.add_argument("--rate-per-s", type=float, default=50.0, help="default per-key rate (requests/s)")
    g.add_argument("--burst", type=float, default=100.0, help="default per-key burst")
    return p


def load_keys() -> KeyStore:
    configure_logging()
    return keys_from_env()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        keys = load_keys()
    except KeyFileError as exc:
        print(
            f"error: {exc}: set {settings.SERVING_API_KEY_ENV}, {settings.SERVING_KEYS_FILE_ENV} or "
            f"{settings.SERVING_KEYS_ENV}; the server refuses to start unprotected",
            file=sys.stderr,
        )
        return 2
    if (args.model_uri or args.registered_model) and not args.tracking_uri:
        print("error: --model-uri/--registered-model need --tracking-uri", file=sys.stderr)
        return 2
    model_uri, note = args.model_uri, args.model_source
    if args.registered_model:
        model_uri, note = resolve_registered_model(args.registered_model, args.tracking_uri)
        log.info("serving %s (%s)", model_uri, note)
    feature_lookup = None
    if args.feature_repo:
        from pathlib import Path

        from llama_platform.features.online import RepoFeatureLookup
        from llama_platform.features.store import FeatureRepoConfig

        repo_dir = Path(args.feature_repo)
        feature_lookup = RepoFeatureLookup(FeatureRepoConfig(repo_dir=repo_dir, data_dir=repo_dir.parent))
    import torch

    on_gpu = torch.cuda.is_available()
    workers = args.batch_workers or (1 if on_gpu else len(os.sched_getaffinity(0)))
    limits = ServiceLimits(max_instances=args.max_instances, max_queue=args.max_queue, batching=not args.no_batching,
                           max_batch=args.max_batch, max_wait_s=args.max_wait_ms / 1000, batch_workers=workers)
    predictor = TriagePredictor(
        args.name,
        feature_lookup=feature_lookup,
        model_dir=args.model_dir,
        model_uri=model_uri,
        tracking_uri=args.tracking_uri,
        download_dir=args.download_dir,
        limits=limits,
        source_note=note,
    )
    # One thread per model call, one call per core: the tiny CPU model is faster single-threaded on a
    # small shared machine (measured: 16 prompts in 1.8 s on 1 thread, 4.6 s on 2).
    if not on_gpu:
        torch.set_num_threads(1)
    predictor.load()
    serve(predictor, keys, host=args.host, http_port=args.http_port, max_body_bytes=args.max_body_bytes,
          rate_per_s=args.rate_per_s, burst=args.burst)
    return 0


if __name__ == "__main__":
    sys.exit(main())
