"""Metrics against values computed by hand (and against sklearn) on small inputs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from llama_platform.evaluation.metrics import (
    Predictions,
    by_group,
    choose_labels,
    constant_predictions,
    evaluate_predictions,
    from_triage_outputs,
    indicator,
    paired_difference,
    primary_confusion,
    resample_weights,
)

LABELS = ("a", "b")
# Label a: tp 2 (rows 0, 1), fp 1 (row 2), fn 1 (row 3) -> P = R = F1 = 2/3.
# Label b: tp 1 (row 2), fp 1 (row 3), fn 1 (row 1)     -> P = R = F1 = 1/2.
# Micro: tp 3, fp 2, fn 2 -> 6 / 10 = 0.6; macro: (2/3 + 1/2) / 2 = 7/12.
TRUTH = np.array([[1, 0], [1, 1], [0, 1], [1, 0]], dtype=bool)
CHOSEN = np.array([[1, 0], [1, 0], [1, 1], [0, 1]], dtype=bool)
# Top labels: a (conf .9, right), a (.6, right), a (.7, wrong: truth is b), b (.8, wrong).
# One row per bin: |conf - acc| = .1, .4, .7, .8 -> ECE = 2.0 / 4 = 0.5.
# Brier per row (mean over labels): .01, .26, .49, .64 -> 0.35.
SCORES = np.array([[0.9, 0.1], [0.6, 0.4], [0.7, 0.3], [0.2, 0.8]])


def _pred(name="m", scores=SCORES, chosen=CHOSEN):
    return Predictions(name, scores, chosen)


def test_hand_computed_point_values():
    r = evaluate_predictions(TRUTH, _pred(), LABELS, n_resamples=200)
    assert r["n"] == 4
    assert r["micro_f1"]["value"] == pytest.approx(0.6)
    assert r["macro_f1"]["value"] == pytest.approx(7 / 12)
    assert r["per_label"]["a"]["precision"]["value"] == pytest.approx(2 / 3)
    assert r["per_label"]["a"]["recall"]["value"] == pytest.approx(2 / 3)
    assert r["per_label"]["b"]["f1"]["value"] == pytest.approx(0.5)
    assert r["per_label"]["a"]["support"] == 3 and r["per_label"]["b"]["support"] == 2
    assert r["ece"]["value"] == pytest.approx(0.5)
    assert r["brier"]["value"] == pytest.approx(0.35)
    rel = r["reliability"]
    assert rel["count"] == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]
    assert rel["confidence"][6:] == pytest.approx([0.6, 0.7, 0.8, 0.9])
    assert rel["accuracy"][6:] == pytest.approx([1.0, 0.0, 0.0, 1.0])
    for m in ("micro_f1", "macro_f1", "ece", "brier"):
        assert r[m]["low"] <= r[m]["value"] <= r[m]["high"], m


def test_agrees_with_sklearn_on_random_multilabel_data():
    rng = np.random.default_rng(3)
    truth = rng.random((300, 4)) < 0.3
    truth[np.arange(300), rng.integers(0, 4, 300)] = True
    scores = rng.dirichlet(np.ones(4), size=300)
    chosen = choose_labels(scores, 0.3)
    r = evaluate_predictions(truth, Predictions("m", scores, chosen), "wxyz", n_resamples=50)
    assert r["micro_f1"]["value"] == pytest.approx(f1_score(truth, chosen, average="micro"))
    assert r["macro_f1"]["value"] == pytest.approx(f1_score(truth, chosen, average="macro", zero_division=0))
    per_p = precision_score(truth, chosen, average=None, zero_division=0)
    per_r = recall_score(truth, chosen, average=None, zero_division=0)
    for j, label in enumerate("wxyz"):
        assert r["per_label"][label]["precision"]["value"] == pytest.approx(per_p[j])
        assert r["per_label"][label]["recall"]["value"] == pytest.approx(per_r[j])


def test_a_resample_weight_equals_repeating_rows():
    """The count-weighted statistic of one resample is the statistic of the rows it drew."""
    rng = np.random.default_rng(0)
    truth = rng.random((40, 3)) < 0.4
    chosen = rng.random((40, 3)) < 0.4
    w = next(resample_weights(40, 5, seed=11))
    assert w.shape == (5, 40) and (w.sum(axis=1) == 40).all()
    rows = np.repeat(np.arange(40), w[0].astype(int))
    from llama_platform.evaluation.metrics import _f1_parts, f1_from_counts

    parts = w[0] @ _f1_parts(truth, chosen)
    stats = f1_from_counts(parts[:3], parts[3:6], parts[6:])
    assert stats["micro_f1"] == pytest.approx(f1_score(truth[rows], chosen[rows], average="micro", zero_division=0))


def test_bootstrap_is_seeded_and_narrows_with_more_rows():
    rng = np.random.default_rng(1)

    def run(n, seed):
        truth = rng.random((n, 2)) < 0.5
        flip = rng.random((n, 2)) < 0.3
        chosen = truth ^ flip
        scores = np.where(chosen, 0.7, 0.3)
        return evaluate_predictions(truth, Predictions("m", scores, chosen), LABELS, seed=seed)

    a = evaluate_predictions(TRUTH, _pred(), LABELS, seed=5)
    b = evaluate_predictions(TRUTH, _pred(), LABELS, seed=5)
    assert a["micro_f1"] == b["micro_f1"]
    small, large = run(50, 0), run(2000, 0)
    width = lambda r: r["micro_f1"]["high"] - r["micro_f1"]["low"]
    assert width(large) < width(small) / 3
    assert 0.6 < large["micro_f1"]["value"] < 0.8


def test_perfect_model_has_a_degenerate_interval():
    r = evaluate_predictions(TRUTH, _pred(scores=TRUTH.astype(float) / TRUTH.sum(1, keepdims=True), chosen=TRUTH), LABELS)
    assert r["micro_f1"] == {"value": 1.0, "low": 1.0, "high": 1.0}


def test_paired_difference():
    same = paired_difference(TRUTH, _pred("x"), _pred("y"), LABELS)
    assert same == {"value": 0.0, "low": 0.0, "high": 0.0}
    perfect = Predictions("p", TRUTH * 0.5 + 0.25, TRUTH)
    d = paired_difference(TRUTH, perfect, _pred(), LABELS)
    assert d["value"] == pytest.approx(0.4)
    assert d["low"] <= 0.4 <= d["high"] and d["high"] <= 1.0


def test_by_group_and_small_groups():
    groups = ["github", "github", "gitee", "gitee"]
    r = by_group(TRUTH, _pred(), LABELS, groups, n_resamples=100)
    # github rows 0-1: a tp 2; b fn 1 -> micro 4/5. gitee rows 2-3: tp 1 (b), fp 2, fn 1 -> 2/5.
    assert r["github"]["micro_f1"]["value"] == pytest.approx(0.8)
    assert r["gitee"]["micro_f1"]["value"] == pytest.approx(0.4)
    skipped = by_group(TRUTH, _pred(), LABELS, ["en", "en", "en", "zh"], min_rows=2, n_resamples=10)
    assert skipped["zh"] == {"n": 1, "skipped": "fewer than 2 rows"}
    with pytest.raises(ValueError, match="group keys"):
        by_group(TRUTH, _pred(), LABELS, ["en"])


def test_primary_confusion_and_helpers():
    cm = primary_confusion(["a", "a", "b", "a"], _pred(), LABELS)
    assert cm.tolist() == [[2, 1], [1, 0]]  # rows: true a (top a, a, b), true b (top a)
    assert indicator([["b"], ["a", "b"]], LABELS).tolist() == [[False, True], [True, True]]
    with pytest.raises(ValueError, match="not one of"):
        indicator([["c"]], LABELS)
    assert choose_labels(np.array([[0.5, 0.35, 0.15]]), 0.3).tolist() == [[True, True, False]]
    maj = constant_predictions("majority", 4, LABELS, "a")
    assert maj.predicted[:, 0].all() and not maj.predicted[:, 1].any()
    out = from_triage_outputs("t", [{"labels": ["b"], "scores": {"a": 0.2, "b": 0.8}}], LABELS)
    assert out.scores.tolist() == [[0.2, 0.8]] and out.predicted.tolist() == [[False, True]]
    with pytest.raises(ValueError, match="within"):
        Predictions("bad", np.array([[1.5, 0.0]]), np.array([[True, False]]))
    with pytest.raises(ValueError, match="shape"):
        evaluate_predictions(TRUTH[:2], _pred(), LABELS)
