"""Run the triage predictor in a KServe ModelServer on one host, behind an API key.

    LLAMA_PLATFORM_API_KEY=... python -m llama_platform.serving.server \\
        (--model-dir DIR | --model-uri models:/name/version --tracking-uri URI) \\
        --name llama4-triage --host 127.0.0.1 --http-port 8080

The key comes only from the environment (never the command line, where `ps` would show it).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Sequence

# Note: kserve.model_server parses sys.argv with parse_known_args when imported. Our flags use
# dashes and are no prefix of its underscore flags, so it ignores them.
from kserve import Model, ModelServer, model_server
from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING
from kserve.protocol.rest.server import RESTServer

from llama_platform import settings
from llama_platform.serving.auth import ApiKeyMiddleware
from llama_platform.serving.predictor import TriagePredictor

DEFAULT_MODEL_NAME = "llama4-triage"


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


def serve(model: Model, api_key: str, host: str = "127.0.0.1", http_port: int = 8080) -> None:
    """Block serving `model` (already loaded) until SIGTERM/SIGINT."""
    if not api_key:
        raise ValueError("refusing to serve without an API key")
    # KServe builds its routes on this module-level FastAPI app; middleware added before start
    # wraps every route.
    model_server.app.add_middleware(ApiKeyMiddleware, api_key=api_key)
    HostBoundModelServer(host=host, http_port=http_port).start([model])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m llama_platform.serving.server", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model-dir", help="a local triage model directory (written by training)")
    src.add_argument("--model-uri", help="an MLflow model URI, e.g. models:/llama4-issue-triage/3")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (needed with --model-uri)")
    p.add_argument("--name", default=DEFAULT_MODEL_NAME, help="model name in the endpoint paths")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--http-port", type=int, default=8080)
    p.add_argument("--download-dir", help="where to put a downloaded model (default: a temp dir)")
    p.add_argument("--feature-repo", help="a Feast repo dir: look up the prompts' repo features online")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    api_key = settings.secret_from_env(settings.SERVING_API_KEY_ENV)
    if not api_key:
        print(
            f"error: no API key: set {settings.SERVING_API_KEY_ENV} in the environment; "
            "the server refuses to start unprotected",
            file=sys.stderr,
        )
        return 2
    if args.model_uri and not args.tracking_uri:
        print("error: --model-uri needs --tracking-uri", file=sys.stderr)
        return 2
    feature_lookup = None
    if args.feature_repo:
        from pathlib import Path

        from llama_platform.features.online import RepoFeatureLookup
        from llama_platform.features.store import FeatureRepoConfig

        repo_dir = Path(args.feature_repo)
        feature_lookup = RepoFeatureLookup(FeatureRepoConfig(repo_dir=repo_dir, data_dir=repo_dir.parent))
    predictor = TriagePredictor(
        args.name,
        feature_lookup=feature_lookup,
        model_dir=args.model_dir,
        model_uri=args.model_uri,
        tracking_uri=args.tracking_uri,
        download_dir=args.download_dir,
    )
    import torch

    # One thread: the tiny CPU model is faster single-threaded on a small shared machine (measured).
    if not torch.cuda.is_available():
        torch.set_num_threads(1)
    predictor.load()
    serve(predictor, api_key, host=args.host, http_port=args.http_port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
