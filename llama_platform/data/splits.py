"""Deterministic train/val/test splits by duplicate cluster.

A split is a pure function of (seed, cluster id): rebuilding the dataset, or adding new issues,
never moves an existing cluster between splits, and near-duplicates share a cluster so one issue's
copy can never sit in test while the original is in train.
"""

from __future__ import annotations

import hashlib
import math

import pandas as pd

from llama_platform.data.schemas import SPLITS


def _unit_interval(seed: str, cluster_id: str) -> float:
    digest = hashlib.sha256(f"{seed}\x00{cluster_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_splits(
    cluster_ids: pd.Series,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: str = "v1",
) -> pd.Series:
    """The split ("train" | "val" | "test") of each row, from its duplicate cluster id."""
    if len(fractions) != len(SPLITS) or any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be {len(SPLITS)} non-negative numbers summing to 1, got {fractions}")
    if cluster_ids.isna().any():
        raise ValueError("cluster ids must not be null")
    bounds = [sum(fractions[: i + 1]) for i in range(len(SPLITS))]

    def split_of(cluster_id: str) -> str:
        u = _unit_interval(seed, str(cluster_id))
        return next((name for name, b in zip(SPLITS, bounds) if u < b), fallback)

    # Float rounding can leave the sum a hair under 1: the last non-empty split takes that sliver.
    fallback = [name for name, f in zip(SPLITS, fractions) if f > 0][-1]

    mapping = {c: split_of(c) for c in cluster_ids.unique()}
    return cluster_ids.map(mapping).rename("split")
