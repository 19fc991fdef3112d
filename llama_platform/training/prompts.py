"""The prompt and completion format shared by the training set, the trainer and the predictor.

Pure and stable: the `training_set` asset formats examples with these functions, and the KServe
predictor formats requests with the same ones, so any change here must bump
`PROMPT_FORMAT_VERSION` (recorded in each model's triage.json).
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping

# Defined here because llama_platform.data has no labels module yet; if one appears, import from it.
LABELS: tuple[str, ...] = ("bug", "feature", "question", "docs")
PROMPT_FORMAT_VERSION = "2"
LABELS_CUE = "Labels:"
# Bodies are cut so that the "Labels:" cue and the features always fit the model's context;
# the trainer also left-truncates prompt tokens, as a second guard.
MAX_TITLE_CHARS = 200
MAX_BODY_CHARS = 600  # keeps ~90% of prompts inside seq_len=320 tokens, so left-truncation rarely eats the title
MAX_FEATURES = 8

_WS = re.compile(r"\s+")


def _squash(text: str | None, limit: int) -> str:
    """Collapse whitespace (newlines cost tokens and carry no label signal) and cut to `limit`."""
    text = _WS.sub(" ", text or "").strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _format_value(value: float | int | str) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, int):
        return str(value)
    return _squash(str(value), 60)


def format_prompt(
    title: str,
    body: str,
    repo: str,
    features: Mapping[str, float | int | str] | None = None,
) -> str:
    """An instruction-style prompt for one issue, ending in the fixed "Labels:" cue.

    `features` (e.g. Feast values) become one `name: value` context line each, sorted by name,
    at most MAX_FEATURES of them; None values are skipped.
    """
    if not isinstance(title, str) or not isinstance(repo, str):
        raise TypeError("title and repo must be strings")
    lines = [
        f"Triage this issue. Answer with labels from: {', '.join(LABELS)}.",
        f"Repo: {_squash(repo, 100)}",
        f"Title: {_squash(title, MAX_TITLE_CHARS)}",
        f"Body: {_squash(body, MAX_BODY_CHARS)}",
    ]
    shown = [(k, v) for k, v in sorted((features or {}).items()) if v is not None][:MAX_FEATURES]
    lines += [f"{_squash(str(name), 40)}: {_format_value(value)}" for name, value in shown]
    lines.append(LABELS_CUE)
    return "\n".join(lines)


def format_completion(labels: Iterable[str], primary: str | None = None) -> str:
    """The target text after the cue, e.g. " bug, docs" (the trainer appends EOS).

    The primary label comes first (inference scores the first label), the others follow in
    LABELS order; duplicates are removed. Unknown or missing labels raise ValueError.
    """
    wanted = set(labels)
    unknown = sorted(wanted - set(LABELS))
    if unknown:
        raise ValueError(f"unknown labels {unknown}; expected a subset of {LABELS}")
    if primary is not None:
        if primary not in LABELS:
            raise ValueError(f"unknown primary label {primary!r}; expected one of {LABELS}")
        wanted.add(primary)
    if not wanted:
        raise ValueError("an example needs at least one label")
    ordered = ([primary] if primary else []) + [l for l in LABELS if l in wanted and l != primary]
    return " " + ", ".join(ordered)


def parse_completion(text: str) -> list[str]:
    """The labels in a generated completion, in order; unknown words are ignored."""
    found = [part.strip().lower() for part in text.split(",")]
    return [label for label in dict.fromkeys(found) if label in LABELS]
