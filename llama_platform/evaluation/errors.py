"""Per-issue predictions of the evaluated models, and the worst-classified issues per label.

model_evaluation stores `predictions_frame(...)` as Parquet in the object store; the
error-analysis notebook reads it back and calls `worst_per_label`.
"""

from __future__ import annotations

import io
from typing import Mapping, Sequence

import pandas as pd

from llama_platform.evaluation.metrics import Predictions


def score_column(model: str, label: str) -> str:
    return f"{model}__score__{label}"


def predictions_frame(
    base: pd.DataFrame, models: Mapping[str, Predictions], labels: Sequence[str]
) -> pd.DataFrame:
    """`base` (one row per evaluated issue: issue_id, labels, ...) plus, per model, its score for
    every label and the labels it chose (`<model>__labels`)."""
    out = base.reset_index(drop=True).copy()
    for name, pred in models.items():
        if len(pred.scores) != len(out):
            raise ValueError(f"{name}: {len(pred.scores)} predictions for {len(out)} issues")
        for j, label in enumerate(labels):
            out[score_column(name, label)] = pred.scores[:, j]
        out[f"{name}__labels"] = [[l for l, on in zip(labels, row) if on] for row in pred.predicted]
    return out


def to_parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def worst_per_label(df: pd.DataFrame, model: str, label: str, k: int = 5) -> dict[str, pd.DataFrame]:
    """The model's worst mistakes on `label`:
    "missed": issues that have the label but were not given it, lowest score first;
    "false_alarms": issues given the label that do not have it, highest score first."""
    col = score_column(model, label)
    if col not in df.columns:
        raise KeyError(f"no scores of model {model!r} for label {label!r}")
    has = df["labels"].map(lambda ls: label in list(ls))
    given = df[f"{model}__labels"].map(lambda ls: label in list(ls))
    keep = [c for c in ("issue_id", "title", "source", "lang", "label") if c in df.columns]
    missed = df[has & ~given].sort_values(col, ascending=True)
    false_alarms = df[~has & given].sort_values(col, ascending=False)
    return {
        "missed": missed[keep + [col]].head(k).reset_index(drop=True),
        "false_alarms": false_alarms[keep + [col]].head(k).reset_index(drop=True),
    }


def error_counts(df: pd.DataFrame, model: str, labels: Sequence[str]) -> pd.DataFrame:
    """Per label: support, missed and false alarms of `model`."""
    rows = []
    for label in labels:
        has = df["labels"].map(lambda ls: label in list(ls)).to_numpy()
        given = df[f"{model}__labels"].map(lambda ls: label in list(ls)).to_numpy()
        rows.append({"label": label, "support": int(has.sum()), "missed": int((has & ~given).sum()),
                     "false_alarms": int((~has & given).sum())})
    return pd.DataFrame(rows)

