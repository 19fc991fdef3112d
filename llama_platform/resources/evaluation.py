"""How models are evaluated and promoted: the gate's policy and the H2O baseline's time box."""

from __future__ import annotations

from dagster import ConfigurableResource


class EvaluationResource(ConfigurableResource):
    # False ("advise"): a refusal is recorded and shown as a warning but does not block deployment.
    enforce_gate: bool = True
    # The gate: the lower bound of the paired 95% CI of the micro-F1 gain must exceed min_gain (vs
    # champion and every baseline), and no label's F1 may drop more than max_label_drop vs champion.
    min_gain: float = 0.0
    max_label_drop: float = 0.05
    n_resamples: int = 1000
    seed: int = 0
    # Forge/language groups smaller than this are listed with their size but not scored.
    min_group_rows: int = 10
    baseline_max_runtime_secs: int = 30
    # Also fit the baseline without each Feast feature group (one more time box per group, plus text only).
    baseline_ablation: bool = False
    h2o_nthreads: int = 2
    h2o_max_mem_size: str = "1G"
