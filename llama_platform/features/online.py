"""Which features go into prompts, and how the endpoint looks them up in the online store.

Training prompts carry repo-level, point-in-time features (from Feast's historical join); the
endpoint must show the model the same lines, so it reads the latest values of the same features
from the online store for each request's repo.
"""

from __future__ import annotations

from typing import Sequence

from llama_platform.features.store import FeatureRepoConfig, feature_refs, online_features, open_feature_store

PROMPT_FEATURE_VIEW = "repo_stats"


def prompt_feature_columns(feature_cols: Sequence[str]) -> list[str]:
    """Only repo-level features go into prompts: they are known when a new issue arrives.
    Issue-level ones such as is_closed or n_comments describe the issue's future and would leak."""
    return [c for c in feature_cols if c.startswith("repo_")]


class RepoFeatureLookup:
    """Callable: repos -> one {feature: value} dict per repo (empty for a repo the store lacks)."""

    def __init__(self, cfg: FeatureRepoConfig):
        self.store = open_feature_store(cfg)
        self.refs = [r for r in feature_refs(self.store) if r.startswith(f"{PROMPT_FEATURE_VIEW}:")]

    def __call__(self, repos: Sequence[str]) -> list[dict]:
        if not repos:
            return []
        values = online_features(self.store, [""] * len(repos), list(repos), [""] * len(repos), self.refs)
        names = [r.split(":", 1)[1] for r in self.refs]
        out = []
        for i in range(len(repos)):
            row = {n: values[n][i] for n in prompt_feature_columns(names) if values.get(n) and values[n][i] is not None}
            out.append(row)
        return out
