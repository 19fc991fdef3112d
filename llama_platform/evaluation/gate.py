"""The promotion gate's decision: should the candidate become `champion`? A pure function.

Promote only if, on the same held-out rows,
- the candidate's micro-F1 beats every baseline (H2O, majority) and the current champion by more
  than `min_gain`, judged by the *lower bound* of the paired-bootstrap interval of the difference
  (a gain inside the noise does not count), and
- no label's F1 falls by more than `max_label_drop` below the champion's.
With no champion yet (the first model), only the baselines must be beaten.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Mapping, Sequence

import numpy as np

from llama_platform.evaluation.metrics import CONFIDENCE, N_RESAMPLES, Predictions, f1_from_counts, paired_difference


@dataclass(frozen=True)
class GatePolicy:
    min_gain: float = 0.0  # the CI's lower bound of micro-F1(candidate) - micro-F1(other) must exceed this
    max_label_drop: float = 0.05  # largest allowed per-label F1 drop vs the champion
    n_resamples: int = N_RESAMPLES
    confidence: float = CONFIDENCE
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_label_drop < 0:
            raise ValueError("max_label_drop must be >= 0")
        if not 0.5 <= self.confidence < 1:
            raise ValueError("confidence must be in [0.5, 1)")


@dataclass
class Decision:
    promote: bool
    reasons: list[str]
    # reference name -> {"value", "low", "high"} of micro-F1(candidate) - micro-F1(reference)
    differences: dict[str, dict] = field(default_factory=dict)
    # label -> F1(candidate) - F1(champion)
    label_changes: dict[str, float] = field(default_factory=dict)
    policy: dict = field(default_factory=dict)

    def summary(self) -> str:
        verdict = "PROMOTE" if self.promote else "REFUSE"
        return f"{verdict}: " + "; ".join(self.reasons)

    def to_dict(self) -> dict:
        return asdict(self)


def _per_label_f1(y_true: np.ndarray, pred: Predictions) -> np.ndarray:
    yp = pred.predicted
    tp = (y_true & yp).sum(0).astype(float)
    fp = (~y_true & yp).sum(0).astype(float)
    fn = (y_true & ~yp).sum(0).astype(float)
    return f1_from_counts(tp, fp, fn)["f1"]


def decide(
    y_true: np.ndarray,
    labels: Sequence[str],
    candidate: Predictions,
    baselines: Mapping[str, Predictions],
    champion: Predictions | None = None,
    policy: GatePolicy = GatePolicy(),
) -> Decision:
    """The decision and its reasons (one per comparison, passed or not)."""
    if not baselines:
        raise ValueError("the gate needs at least one baseline to compare against")
    y_true = np.asarray(y_true, dtype=bool)
    references = dict(baselines)
    if champion is not None:
        references = {"champion": champion, **references}
    reasons, ok, differences = [], True, {}
    for name, ref in references.items():
        d = paired_difference(
            y_true, candidate, ref, labels, "micro_f1",
            n_resamples=policy.n_resamples, seed=policy.seed, confidence=policy.confidence,
        )
        differences[name] = d
        beats = d["low"] > policy.min_gain
        ok &= beats
        ci = f"{policy.confidence:.0%} CI [{d['low']:+.3f}, {d['high']:+.3f}]"
        if beats:
            reasons.append(f"beats {name}: micro-F1 {d['value']:+.3f} ({ci}, lower bound > {policy.min_gain:g})")
        else:
            reasons.append(f"does not beat {name}: micro-F1 {d['value']:+.3f} ({ci}, lower bound not > {policy.min_gain:g})")
    label_changes = {}
    if champion is None:
        reasons.append("no champion yet: compared with the baselines only")
    else:
        change = _per_label_f1(y_true, candidate) - _per_label_f1(y_true, champion)
        label_changes = {label: float(c) for label, c in zip(labels, change)}
        dropped = {label: c for label, c in label_changes.items() if c < -policy.max_label_drop}
        if dropped:
            ok = False
            worst = ", ".join(f"{l} {c:+.3f}" for l, c in sorted(dropped.items(), key=lambda kv: kv[1]))
            reasons.append(f"per-label F1 regression vs champion beyond -{policy.max_label_drop:g}: {worst}")
        else:
            reasons.append(f"no label's F1 drops by more than {policy.max_label_drop:g} vs champion")
    return Decision(bool(ok), reasons, differences, label_changes, asdict(policy))
