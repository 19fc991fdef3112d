"""A test-only model server: the real predictor, auth and ModelServer around a keyword model.

Lets the serving tests run a real server process in a second, without torch or a trained model.
"""

from __future__ import annotations

import argparse
from typing import Sequence

from llama_platform.serving.predictor import TriagePredictor
from llama_platform.serving.server import load_keys, serve
from llama_platform.serving.triage import ServiceLimits
from llama_platform_tests.serving.keyword_model import LABELS, KeywordFeatures, KeywordModel  # noqa: F401


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--name", default="triage-test")
    p.add_argument("--http-port", type=int, required=True)
    p.add_argument("--delay-ms", type=float, default=0.0)
    p.add_argument("--max-queue", type=int, default=256)
    p.add_argument("--no-batching", action="store_true")
    p.add_argument("--rate-per-s", type=float, default=50.0)
    p.add_argument("--burst", type=float, default=100.0)
    p.add_argument("--max-body-bytes", type=int, default=1 << 20)
    p.add_argument("--features", action="store_true")
    args = p.parse_args(argv)
    limits = ServiceLimits(max_queue=args.max_queue, batching=not args.no_batching)
    predictor = TriagePredictor(args.name, model=KeywordModel(args.delay_ms / 1000), limits=limits,
                                feature_lookup=KeywordFeatures() if args.features else None)
    predictor.load()
    serve(predictor, load_keys(), "127.0.0.1", args.http_port, max_body_bytes=args.max_body_bytes,
          rate_per_s=args.rate_per_s, burst=args.burst)


if __name__ == "__main__":
    main()
