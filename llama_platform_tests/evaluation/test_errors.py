"""Per-issue predictions and the worst-classified issues per label, on a hand-made frame."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from llama_platform.evaluation.errors import error_counts, predictions_frame, to_parquet_bytes, worst_per_label
from llama_platform.evaluation.metrics import Predictions

LABELS = ("bug", "docs")


def _frame() -> pd.DataFrame:
    base = pd.DataFrame({"issue_id": ["a", "b", "c", "d"], "title": ["A", "B", "C", "D"],
                         "labels": [["bug"], ["bug", "docs"], ["docs"], ["bug"]], "label": ["bug", "bug", "docs", "bug"]})
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7]])
    chosen = np.array([[1, 0], [1, 0], [1, 1], [0, 1]], dtype=bool)
    return predictions_frame(base, {"ft": Predictions("ft", scores, chosen)}, LABELS)


def test_predictions_frame_round_trips_through_parquet():
    df = _frame()
    assert list(df.columns[-3:]) == ["ft__score__bug", "ft__score__docs", "ft__labels"]
    back = pd.read_parquet(io.BytesIO(to_parquet_bytes(df)))
    assert back["ft__labels"].map(list).tolist() == [["bug"], ["bug"], ["bug", "docs"], ["docs"]]
    with pytest.raises(ValueError, match="predictions for"):
        predictions_frame(df.head(2), {"ft": Predictions("ft", np.zeros((3, 2)), np.zeros((3, 2), bool))}, LABELS)


def test_worst_per_label_ranks_missed_and_false_alarms():
    df = _frame()
    bug = worst_per_label(df, "ft", "bug", k=5)
    assert bug["missed"]["issue_id"].tolist() == ["d"]  # has bug, not given it
    assert bug["false_alarms"]["issue_id"].tolist() == ["c"]  # given bug, does not have it
    docs = worst_per_label(df, "ft", "docs", k=1)
    assert docs["missed"]["issue_id"].tolist() == ["b"]
    assert docs["false_alarms"]["issue_id"].tolist() == ["d"]
    # c has docs and got it: neither list
    assert error_counts(df, "ft", LABELS).to_dict("records") == [
        {"label": "bug", "support": 3, "missed": 1, "false_alarms": 1},
        {"label": "docs", "support": 2, "missed": 1, "false_alarms": 1},
    ]
    with pytest.raises(KeyError):
        worst_per_label(df, "h2o", "bug")


def test_ablation_table_says_whether_a_group_helps():
    from llama_platform.assets.baseline import ABLATION_PREFIX, SCORE_PREFIX, ablation_scores
    from llama_platform.assets.evaluation import _ablation_rows
    from llama_platform.evaluation.metrics import indicator
    from llama_platform.training.prompts import LABELS as ALL

    rng = np.random.default_rng(0)
    primary = rng.integers(0, 4, 300)
    truth = indicator([[ALL[p]] for p in primary], ALL)
    right = np.eye(4)[primary] * 0.7 + 0.075
    wrong = np.eye(4)[(primary + 1) % 4] * 0.7 + 0.075
    frame = pd.DataFrame({"issue_id": [f"i{k}" for k in range(300)]})
    for j, label in enumerate(ALL):
        frame[SCORE_PREFIX + label] = right[:, j]
        frame[f"{ABLATION_PREFIX}without repo__score__{label}"] = np.where(np.arange(300)[:, None] % 2 == 0, right, wrong)[:, j]
        frame[f"{ABLATION_PREFIX}without author__score__{label}"] = right[:, j]
    ids = frame["issue_id"].tolist()[::-1]
    variants = ablation_scores(frame, ids)
    assert sorted(variants) == ["without author", "without repo"]
    full = Predictions("h2o", right[::-1], truth[::-1].astype(bool))
    rows = {r["h2o variant"]: r for r in _ablation_rows(truth[::-1], full, variants, {"n_resamples": 200})}
    assert rows["without repo"]["left-out group"] == "helps"  # half the rows go wrong without it
    assert rows["without author"]["left-out group"] == "no clear effect"  # identical scores
    assert rows["without author"]["all − variant"].startswith("+0.000")
