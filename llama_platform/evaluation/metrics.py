"""Triage metrics on the held-out test split, each with a seeded bootstrap confidence interval.

Multi-label: an issue has a set of true labels (`labels`) and a model picks a set (its top label
plus any other scoring >= threshold, TriageModel's rule). Counts are per (issue, label):
micro-F1 pools them over labels, macro-F1 averages the per-label F1 (sklearn's definitions,
zero_division=0).

Calibration is *top-label* calibration: the confidence is the highest label score and the
outcome is whether that label is among the issue's true labels (a reliability curve over
equal-width bins and its expected calibration error, ECE). The Brier score is the mean squared
error of every label score against the 0/1 truth, over all (issue, label) pairs.

The bootstrap resamples issues: each resample is a vector of counts (how often each issue was
drawn, multinomial), so every statistic is a weighted sum computed for all resamples at once with
one matrix product. We write this ourselves rather than use scipy.stats.bootstrap because the same
resamples must be shared by two models for a *paired* difference (the promotion gate), and
count weights make 1000 resamples of every statistic one matmul instead of 1000 sklearn calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import numpy as np

N_RESAMPLES = 1000
CONFIDENCE = 0.95
N_BINS = 10
# Resample weights are generated in chunks so memory stays ~chunk*n floats, whatever n is.
_CHUNK_CELLS = 4_000_000


@dataclass(frozen=True)
class Predictions:
    """One model's output on the evaluation rows, labels in a fixed order.

    scores: (n, L) label scores in [0, 1]; predicted: (n, L) bool, the labels the model chose.
    """

    name: str
    scores: np.ndarray
    predicted: np.ndarray

    def __post_init__(self) -> None:
        scores = np.asarray(self.scores, dtype=float)
        predicted = np.asarray(self.predicted, dtype=bool)
        if scores.ndim != 2 or scores.shape != predicted.shape:
            raise ValueError(f"{self.name}: scores {scores.shape} and predicted {predicted.shape} must be equal (n, L)")
        if not np.isfinite(scores).all() or (scores < 0).any() or (scores > 1).any():
            raise ValueError(f"{self.name}: label scores must be finite and within [0, 1]")
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "predicted", predicted)

    @property
    def top1(self) -> np.ndarray:
        return self.scores.argmax(axis=1)


def indicator(label_lists: Sequence[Sequence[str]], labels: Sequence[str]) -> np.ndarray:
    """(n, L) bool: row i has label j. Unknown labels raise (they would silently count as misses)."""
    index = {label: j for j, label in enumerate(labels)}
    out = np.zeros((len(label_lists), len(labels)), dtype=bool)
    for i, row in enumerate(label_lists):
        for label in row:
            if label not in index:
                raise ValueError(f"row {i}: label {label!r} is not one of {list(labels)}")
            out[i, index[label]] = True
    return out


def choose_labels(scores: np.ndarray, threshold: float) -> np.ndarray:
    """TriageModel's decision rule on a score matrix: the top label, plus any other >= threshold."""
    scores = np.asarray(scores, dtype=float)
    chosen = scores >= threshold
    chosen[np.arange(len(scores)), scores.argmax(axis=1)] = True
    return chosen


def from_triage_outputs(name: str, outputs: Sequence[Mapping], labels: Sequence[str]) -> Predictions:
    """Predictions from TriageModel.predict's [{"labels": [...], "scores": {label: p}}, ...]."""
    scores = np.array([[float(o["scores"][label]) for label in labels] for o in outputs]).reshape(len(outputs), len(labels))
    return Predictions(name, scores, indicator([o["labels"] for o in outputs], labels))


def constant_predictions(name: str, n: int, labels: Sequence[str], label: str) -> Predictions:
    """The majority baseline: always `label`, with score 1 (and 0 for the others)."""
    scores = np.zeros((n, len(labels)))
    scores[:, list(labels).index(label)] = 1.0
    return Predictions(name, scores, scores > 0.5)


# --- resampling -------------------------------------------------------------------------------


def resample_weights(n: int, n_resamples: int = N_RESAMPLES, seed: int = 0) -> Iterator[np.ndarray]:
    """Chunks of bootstrap count vectors, shape (b, n): row r says how often each of the n rows
    was drawn in resample r. The same (n, n_resamples, seed) always yields the same resamples,
    which is what makes two models' statistics *paired*."""
    if n < 1:
        raise ValueError("cannot bootstrap zero rows")
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // n)
    uniform = np.full(n, 1.0 / n)
    for start in range(0, n_resamples, chunk):
        yield rng.multinomial(n, uniform, size=min(chunk, n_resamples - start)).astype(float)


def _interval(point: float | np.ndarray, samples: np.ndarray, confidence: float) -> dict:
    """Percentile interval; samples has the resample axis first."""
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(samples, [alpha, 1.0 - alpha], axis=0)
    if np.ndim(point) == 0:
        return {"value": float(point), "low": float(low), "high": float(high)}
    return {"value": np.asarray(point, float), "low": low, "high": high}


# --- the statistics, as functions of weighted per-row contributions ----------------------------


def _f1_parts(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """(n, 3L): per-row true positives, false positives, false negatives for every label."""
    return np.concatenate([y_true & y_pred, ~y_true & y_pred, y_true & ~y_pred], axis=1).astype(float)


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b > 0)


def f1_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> dict[str, np.ndarray]:
    """Precision/recall/F1 per label and micro/macro F1; works on (L,) or (B, L) counts."""
    precision = _safe_div(tp, tp + fp)
    recall = _safe_div(tp, tp + fn)
    f1 = _safe_div(2 * tp, 2 * tp + fp + fn)
    micro = _safe_div(2 * tp.sum(-1), (2 * tp + fp + fn).sum(-1))
    return {"precision": precision, "recall": recall, "f1": f1, "micro_f1": micro, "macro_f1": f1.mean(-1)}


def _calibration_parts(y_true: np.ndarray, scores: np.ndarray, n_bins: int) -> np.ndarray:
    """(n, 2K + 2): per-row bin membership times confidence, times correctness, the row's
    Brier contribution, and the row itself (1) for normalising."""
    conf = scores.max(axis=1)
    correct = y_true[np.arange(len(scores)), scores.argmax(axis=1)].astype(float)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    onehot = np.eye(n_bins)[bins]
    brier = ((scores - y_true) ** 2).mean(axis=1)
    return np.concatenate([onehot * conf[:, None], onehot * correct[:, None], onehot, brier[:, None]], axis=1)


def _calibration_from_sums(sums: np.ndarray, n_bins: int, total: np.ndarray | float) -> dict[str, np.ndarray]:
    conf_sum, acc_sum, count = sums[..., :n_bins], sums[..., n_bins : 2 * n_bins], sums[..., 2 * n_bins : 3 * n_bins]
    ece = np.abs(conf_sum - acc_sum).sum(-1) / total
    return {"ece": ece, "brier": sums[..., 3 * n_bins] / total, "conf_sum": conf_sum, "acc_sum": acc_sum, "count": count}


def _all_stats(parts: np.ndarray, n_labels: int, n_bins: int, total) -> dict[str, np.ndarray]:
    L = n_labels
    stats = f1_from_counts(parts[..., :L], parts[..., L : 2 * L], parts[..., 2 * L : 3 * L])
    cal = _calibration_from_sums(parts[..., 3 * L :], n_bins, total)
    return {**stats, "ece": cal["ece"], "brier": cal["brier"]}


def _row_parts(y_true: np.ndarray, pred: Predictions, n_bins: int) -> np.ndarray:
    return np.concatenate([_f1_parts(y_true, pred.predicted), _calibration_parts(y_true, pred.scores, n_bins)], axis=1)


def _check(y_true: np.ndarray, pred: Predictions) -> np.ndarray:
    y_true = np.asarray(y_true, dtype=bool)
    if y_true.shape != pred.scores.shape:
        raise ValueError(f"{pred.name}: truth {y_true.shape} and predictions {pred.scores.shape} differ in shape")
    if len(y_true) == 0:
        raise ValueError("no rows to evaluate")
    return y_true


def evaluate_predictions(
    y_true: np.ndarray,
    pred: Predictions,
    labels: Sequence[str],
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
    n_bins: int = N_BINS,
) -> dict:
    """Every metric of `pred` with its bootstrap interval ({"value", "low", "high"}).

    Returns {"n", "micro_f1", "macro_f1", "ece", "brier", "per_label": {label: {"support",
    "precision", "recall", "f1"}}, "reliability": {"confidence", "accuracy", "count"} per bin}.
    """
    y_true = _check(y_true, pred)
    n, L = y_true.shape
    parts = _row_parts(y_true, pred, n_bins)
    point = _all_stats(parts.sum(0), L, n_bins, n)
    samples: dict[str, list] = {k: [] for k in point}
    for w in resample_weights(n, n_resamples, seed):
        for k, v in _all_stats(w @ parts, L, n_bins, n).items():
            samples[k].append(v)
    stacked = {k: np.concatenate(v) for k, v in samples.items()}
    cal = _calibration_from_sums(parts[:, 3 * L :].sum(0), n_bins, n)
    ci = {k: _interval(point[k], stacked[k], confidence) for k in point}
    return {
        "n": int(n),
        **{k: ci[k] for k in ("micro_f1", "macro_f1", "ece", "brier")},
        "per_label": {
            label: {
                "support": int(y_true[:, j].sum()),
                **{m: {part: float(ci[m][part][j]) for part in ("value", "low", "high")} for m in ("precision", "recall", "f1")},
            }
            for j, label in enumerate(labels)
        },
        "reliability": {
            "confidence": _safe_div(cal["conf_sum"], cal["count"]).tolist(),
            "accuracy": _safe_div(cal["acc_sum"], cal["count"]).tolist(),
            "count": cal["count"].astype(int).tolist(),
        },
    }


def paired_difference(
    y_true: np.ndarray,
    a: Predictions,
    b: Predictions,
    labels: Sequence[str],
    metric: str = "micro_f1",
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> dict:
    """metric(a) - metric(b) on the same rows, with a paired bootstrap interval (each resample
    draws the same issues for both models, so shared difficulty cancels out)."""
    y_true = _check(_check(y_true, a), b)
    n, L = y_true.shape
    pa, pb = _row_parts(y_true, a, N_BINS), _row_parts(y_true, b, N_BINS)
    point = _all_stats(pa.sum(0), L, N_BINS, n)[metric] - _all_stats(pb.sum(0), L, N_BINS, n)[metric]
    diffs = [
        _all_stats(w @ pa, L, N_BINS, n)[metric] - _all_stats(w @ pb, L, N_BINS, n)[metric]
        for w in resample_weights(n, n_resamples, seed)
    ]
    return _interval(point, np.concatenate(diffs), confidence)


def by_group(
    y_true: np.ndarray,
    pred: Predictions,
    labels: Sequence[str],
    groups: Sequence[str],
    min_rows: int = 1,
    **kwargs,
) -> dict[str, dict]:
    """evaluate_predictions on each group's rows (e.g. forge or language), each resampled within
    the group. Groups with fewer than `min_rows` rows are reported as {"n": k, "skipped": reason}."""
    y_true = _check(y_true, pred)
    groups = np.asarray([str(g) for g in groups])
    if len(groups) != len(y_true):
        raise ValueError(f"{len(groups)} group keys for {len(y_true)} rows")
    out = {}
    for g in sorted(set(groups)):
        mask = groups == g
        if mask.sum() < min_rows:
            out[g] = {"n": int(mask.sum()), "skipped": f"fewer than {min_rows} rows"}
            continue
        sub = Predictions(pred.name, pred.scores[mask], pred.predicted[mask])
        out[g] = evaluate_predictions(y_true[mask], sub, labels, **kwargs)
    return out


def primary_confusion(primary: Sequence[str], pred: Predictions, labels: Sequence[str]) -> np.ndarray:
    """(L, L) counts: rows = the issue's primary (first) true label, columns = the model's top label."""
    index = {label: j for j, label in enumerate(labels)}
    unknown = sorted({p for p in primary if p not in index})
    if unknown:
        raise ValueError(f"primary labels {unknown} are not in {list(labels)}")
    out = np.zeros((len(labels), len(labels)), dtype=int)
    np.add.at(out, ([index[p] for p in primary], pred.top1), 1)
    return out


def summary_row(name: str, result: dict) -> dict:
    """One flat row of the comparison table: value [low, high] for the headline metrics."""
    row = {"model": name, "n": result["n"]}
    for m in ("micro_f1", "macro_f1", "ece", "brier"):
        row[m] = round(result[m]["value"], 4)
        row[f"{m}_ci"] = f"[{result[m]['low']:.3f}, {result[m]['high']:.3f}]"
    return row

