"""A keyword model and repo features for tests: no torch, no KServe (MLServer imports it too)."""

from __future__ import annotations

import threading
import time
from typing import Sequence

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


class SlowKeywordModel(KeywordModel):
    """The keyword model at 0.2 s a call: a busy accelerator, for MLServer (which builds models without arguments)."""

    def __init__(self):
        super().__init__(delay_s=0.2)
