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
