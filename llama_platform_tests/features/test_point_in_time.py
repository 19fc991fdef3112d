"""Point-in-time correctness of every model-input feature, through Feast's real historical join.

A training row at time t must see nothing stamped after t. Two checks that fail otherwise:
- counterfactual: the features of rows before a cutoff T are the same whether the store was built
  from the whole snapshot or from the world as it was at T (later issues and later closings removed);
- brute force: the author history of each row equals a direct count over issues before its day.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llama_platform.evaluation.baseline import LEAKY_FEATURES
from llama_platform.features.sources import build_feature_tables
from llama_platform.features.store import FeatureRepoConfig, historical_features, write_feature_store

LABELS = ["bug", "docs", "feature", "question"]
KEYS = ["issue_id", "repo", "author", "event_timestamp"]


def _snapshot(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01", tz="UTC")
    created = start + pd.to_timedelta(np.sort(rng.uniform(0, 40 * 24 * 3600, n)), unit="s")
    closed = [c + pd.Timedelta(hours=float(h)) if rng.random() < 0.6 else pd.NaT
              for c, h in zip(created, rng.uniform(1, 24 * 20, n))]
    bodies = ["see https://x.io/a and https://y.io", "Traceback (most recent call last):\n  File x", "plain text"]
    rows = []
    for i in range(n):
        label = LABELS[rng.integers(0, 4)]
        rows.append({
            "issue_id": f"github:r{i % 3}#{i}", "source": "github", "repo": f"o/r{i % 3}", "number": str(i),
            "title": f"issue {i}", "body": bodies[i % 3], "n_comments": int(rng.integers(0, 9)),
            "labels": [label], "label": label, "state": "closed" if pd.notna(closed[i]) else "open",
            "author": None if i % 17 == 0 else f"u{rng.integers(0, 12)}",
            "created_at": created[i], "closed_at": closed[i], "redactions": 0,
        })
    return pd.DataFrame(rows)


def _as_of(snapshot: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """The snapshot as it looked at `cutoff`: later issues absent, later closings not yet happened."""
    past = snapshot[snapshot["created_at"] < cutoff].copy()
    late = past["closed_at"] >= cutoff
    past.loc[late, "closed_at"] = pd.NaT
    past.loc[late, "state"] = "open"
    return past


def _training_rows(snapshot: pd.DataFrame, tables: dict, root) -> pd.DataFrame:
    store = write_feature_store(FeatureRepoConfig(repo_dir=root / "repo", data_dir=root / "data"), tables)
    entity = snapshot[["issue_id", "repo", "author"]].copy()
    entity["event_timestamp"] = snapshot["created_at"]
    return historical_features(store, entity).set_index("issue_id").sort_index()


@pytest.fixture(scope="module")
def snapshot() -> pd.DataFrame:
    return _snapshot()


@pytest.fixture(scope="module")
def full(snapshot, tmp_path_factory) -> pd.DataFrame:
    return _training_rows(snapshot, build_feature_tables(snapshot, labels=LABELS), tmp_path_factory.mktemp("full"))


@pytest.mark.parametrize("day", [9, 23])
def test_no_row_sees_anything_after_its_cutoff(snapshot, full, day, tmp_path):
    cutoff = pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(days=day, hours=13)
    past = _as_of(snapshot, cutoff)
    assert 10 < len(past) < len(snapshot)
    then = _training_rows(past, build_feature_tables(past, labels=LABELS), tmp_path)
    model_inputs = [c for c in then.columns if c not in KEYS and c not in LEAKY_FEATURES]
    assert {"author_prior_issues", "author_prior_closed", "author_first_time", "repo_issues_before",
            "repo_closed_before", "n_urls", "has_stack_trace"} <= set(model_inputs)
    seen_now = full.loc[then.index, model_inputs]
    pd.testing.assert_frame_equal(seen_now, then[model_inputs], check_dtype=False)
    # The snapshot-state columns do differ (so the check above can fail): they must stay out of model inputs.
    assert (full.loc[then.index, "is_closed"] != then["is_closed"]).any()


def test_author_history_equals_a_direct_count(snapshot, full):
    checked = 0
    for row in snapshot.itertuples():
        if row.author is None:
            assert pd.isna(full.loc[row.issue_id, "author_prior_issues"])
            continue
        day = row.created_at.floor("D")
        same = snapshot[snapshot["author"] == row.author]
        prior = int((same["created_at"] < day).sum())
        got = full.loc[row.issue_id]
        assert got["author_prior_issues"] == prior, row.issue_id
        assert got["author_prior_closed"] == int((same["closed_at"] < day).sum()), row.issue_id
        assert bool(got["author_first_time"]) == (prior == 0), row.issue_id
        checked += 1
    assert checked > 100


def test_text_stats(full):
    assert full.loc["github:r0#0", "n_urls"] == 2 and not full.loc["github:r0#0", "has_stack_trace"]
    assert full.loc["github:r1#1", "has_stack_trace"] and full.loc["github:r1#1", "n_urls"] == 0
