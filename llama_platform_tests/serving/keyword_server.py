"""A test-only model server: the real predictor, auth and ModelServer around a keyword model.

Lets the serving tests run a real server process in a second, without torch or a trained model.
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Sequence

from llama_platform.serving.predictor import TriagePredictor
from llama_platform.serving.server import load_keys, serve
from llama_platform.serving.triage import ServiceLimits

LABELS = ("bug", "feature", "question", "docs")


class KeywordModel:
    """Scores a label high when its name appears in the prompt.

    `delay_s` makes every call take that long whatever its size, one call at a time: a stand-in for
    one accelerator, busy (the flood test) or batch-size-independent (the benchmark's flat-cost mode).
    """

    delay_s = 0.0
    _device = threading.Lock()

    def __init__(self, delay_s: float = 0.0):
        self.delay_s = delay_s

    def predict(self, prompts: Sequence[str]) -> list[dict]:
        if self.delay_s:
            with self._device:
                time.sleep(self.delay_s)
        out = []
        for prompt in prompts:
            # Only the title/body lines: the instruction line names every label.
            text = " ".join(l for l in prompt.lower().splitlines() if l.startswith(("title:", "body:")))
            raw = {l: (5.0 if l in text else 1.0) for l in LABELS}
            total = sum(raw.values())
            scores = {l: v / total for l, v in raw.items()}
            best = max(scores, key=scores.get)
            out.append({"labels": [best], "scores": scores})
        return out


class KeywordFeatures:
    """Repo features as the online store would give them (the stars of a repo: its name's length)."""

    def __call__(self, repos: list[str]) -> list[dict]:
        return [{"repo_stars": len(r), "repo_open_issues": 3} for r in repos]


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
