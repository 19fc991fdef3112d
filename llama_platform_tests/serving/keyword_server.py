"""A test-only model server: the real predictor, auth and ModelServer around a keyword model.

Lets the serving tests run a real server process in a second, without torch or a trained model.
"""

from __future__ import annotations

import argparse
from typing import Sequence

from llama_platform import settings
from llama_platform.serving.predictor import TriagePredictor
from llama_platform.serving.server import serve

LABELS = ("bug", "feature", "question", "docs")


class KeywordModel:
    """Scores a label high when its name appears in the prompt."""

    def predict(self, prompts: Sequence[str]) -> list[dict]:
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


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--name", default="triage-test")
    p.add_argument("--http-port", type=int, required=True)
    args = p.parse_args(argv)
    predictor = TriagePredictor(args.name, model=KeywordModel())
    predictor.load()
    serve(predictor, settings.secret_from_env(settings.SERVING_API_KEY_ENV) or "", "127.0.0.1", args.http_port)


if __name__ == "__main__":
    main()
