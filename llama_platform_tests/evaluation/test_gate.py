"""The promotion gate's decisions on models of known quality."""

from __future__ import annotations

import numpy as np
import pytest

from llama_platform.evaluation.gate import GatePolicy, decide
from llama_platform.evaluation.metrics import Predictions, constant_predictions

LABELS = ("bug", "feature", "question", "docs")
N = 600
RNG = np.random.default_rng(7)
PRIMARY = RNG.choice(4, size=N, p=[0.4, 0.3, 0.2, 0.1])
TRUTH = np.eye(4, dtype=bool)[PRIMARY]
POLICY = GatePolicy(n_resamples=500, max_label_drop=0.05)


def model(name: str, accuracy: float | np.ndarray, seed: int) -> Predictions:
    """Single-label predictions right with the given probability (per label if an array)."""
    rng = np.random.default_rng(seed)
    p_right = np.asarray(accuracy, dtype=float)
    p_right = p_right[PRIMARY] if p_right.ndim else np.full(N, float(p_right))
    right = rng.random(N) < p_right
    top = np.where(right, PRIMARY, (PRIMARY + 1 + rng.integers(0, 3, N)) % 4)
    scores = np.full((N, 4), 0.1)
    scores[np.arange(N), top] = 0.7
    return Predictions(name, scores, np.eye(4, dtype=bool)[top])


MAJORITY = constant_predictions("majority", N, LABELS, "bug")


def test_promotes_a_clearly_better_model():
    d = decide(TRUTH, LABELS, model("cand", 0.9, 1), {"majority": MAJORITY, "h2o": model("h2o", 0.6, 2)},
               champion=model("champ", 0.7, 3), policy=POLICY)
    assert d.promote, d.summary()
    assert set(d.differences) == {"champion", "majority", "h2o"}
    assert d.differences["champion"]["low"] > 0.1
    assert d.summary().startswith("PROMOTE")
    assert all(c > -0.05 for c in d.label_changes.values())


def test_refuses_a_worse_model():
    d = decide(TRUTH, LABELS, model("cand", 0.7, 1), {"majority": MAJORITY}, champion=model("champ", 0.9, 3), policy=POLICY)
    assert not d.promote
    assert any(r.startswith("does not beat champion") for r in d.reasons)
    assert d.differences["champion"]["high"] < 0


def test_refuses_a_gain_inside_the_noise():
    # Two models of equal quality: the point difference may be positive, the interval straddles 0.
    d = decide(TRUTH, LABELS, model("cand", 0.8, 1), {"majority": MAJORITY}, champion=model("champ", 0.8, 3), policy=POLICY)
    assert not d.promote
    assert d.differences["champion"]["low"] <= 0 <= d.differences["champion"]["high"]


def test_refuses_a_per_label_regression_despite_a_better_micro_f1():
    champion = model("champ", 0.75, 3)
    candidate = model("cand", np.array([0.98, 0.98, 0.98, 0.3]), 1)  # much worse on docs
    d = decide(TRUTH, LABELS, candidate, {"majority": MAJORITY}, champion=champion, policy=POLICY)
    assert d.differences["champion"]["low"] > 0  # overall it is better...
    assert not d.promote  # ...but docs regressed
    assert d.label_changes["docs"] < -0.05
    assert any("regression" in r and "docs" in r for r in d.reasons)
    lenient = decide(TRUTH, LABELS, candidate, {"majority": MAJORITY}, champion=champion,
                     policy=GatePolicy(n_resamples=500, max_label_drop=1.0))
    assert lenient.promote


def test_first_model_is_judged_against_the_baselines_only():
    good = decide(TRUTH, LABELS, model("cand", 0.8, 1), {"majority": MAJORITY, "h2o": model("h2o", 0.6, 2)}, policy=POLICY)
    assert good.promote and good.label_changes == {}
    assert "no champion yet: compared with the baselines only" in good.reasons
    weak = decide(TRUTH, LABELS, model("cand", 0.62, 1), {"majority": MAJORITY, "h2o": model("h2o", 0.6, 2)}, policy=POLICY)
    assert not weak.promote
    assert any(r.startswith("does not beat h2o") for r in weak.reasons)
    assert any(r.startswith("beats majority") for r in weak.reasons)


def test_margin_and_bad_input():
    cand, champ = model("cand", 0.9, 1), model("champ", 0.7, 3)
    strict = decide(TRUTH, LABELS, cand, {"majority": MAJORITY}, champion=champ,
                    policy=GatePolicy(n_resamples=200, min_gain=0.5))
    assert not strict.promote  # a real gain, but not the required margin
    with pytest.raises(ValueError, match="baseline"):
        decide(TRUTH, LABELS, cand, {}, policy=POLICY)
    with pytest.raises(ValueError):
        GatePolicy(max_label_drop=-1)


def test_gate_mode_setting():
    from llama_platform.settings import SettingsError, load_settings

    assert load_settings({}).gate_enforced is False  # local profile: advise
    assert load_settings({"LLAMA_PLATFORM_PROFILE": "k8s"}).gate_enforced is True
    assert load_settings({"LLAMA_PLATFORM_GATE": "enforce"}).gate_enforced is True
    with pytest.raises(SettingsError, match="LLAMA_PLATFORM_GATE"):
        load_settings({"LLAMA_PLATFORM_GATE": "maybe"})
