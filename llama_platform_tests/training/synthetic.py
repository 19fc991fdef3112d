"""A synthetic training set whose labels can be read off the words, for fast training tests."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd

from llama_platform.training.prompts import format_completion, format_prompt

THINGS = ["the parser", "the CLI", "the scheduler", "the config loader", "the web UI", "the exporter",
          "the cache", "the plugin API", "the sync job", "the importer"]
TEMPLATES = {
    "bug": [("{t} crashes on startup", "Traceback shows an exception and a segfault in {t}. Broken since last release."),
            ("Error when running {t}", "{t} fails with an error: stack trace attached, crash reproducible.")],
    "feature": [("Add support for streaming in {t}", "It would be nice to have an option to enable streaming in {t}. Proposal attached."),
                ("Feature request: new option for {t}", "Please add a flag to {t}; this enhancement would help users.")],
    "question": [("How do I configure {t}?", "Is it possible to use {t} with a proxy? I could not figure out how, any help?"),
                 ("Question about {t} usage", "How can I make {t} read two files? Wondering what the right way is.")],
    "docs": [("Typo in the README section about {t}", "The documentation page for {t} has a broken link and a typo."),
             ("Docs: missing example for {t}", "The guide does not document {t}; please update the docs page.")],
}
REPOS = ["acme/widgets", "octo/tools", "gitee-org/kit"]


def synthetic_training_set(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """Rows in the training_set contract: issue_id, split, prompt, completion, labels, label."""
    rng = random.Random(seed)
    labels = list(TEMPLATES)
    rows = []
    for i in range(n):
        label = labels[i % len(labels)]
        title, body = rng.choice(TEMPLATES[label])
        thing = rng.choice(THINGS)
        extra = [label]
        if label == "bug" and rng.random() < 0.2:
            extra.append("docs")
        features = {"comment_count": rng.randint(0, 20), "author_open_issues": rng.randint(0, 5)}
        # Whole groups of four (one per label) share a split, so every split is label-balanced.
        group = (i // len(labels)) % 10
        split = "train" if group < 8 else ("val" if group == 8 else "test")
        rows.append(
            {
                "issue_id": f"{REPOS[i % 3]}#{i}",
                "split": split,
                "prompt": format_prompt(title.format(t=thing), body.format(t=thing), REPOS[i % 3], features),
                "completion": format_completion(extra, primary=label),
                "labels": extra,
                "label": label,
            }
        )
    return pd.DataFrame(rows)


def write_synthetic_training_set(path: Path, n: int = 200, seed: int = 0) -> Path:
    synthetic_training_set(n, seed).to_parquet(path, index=False)
    return path
