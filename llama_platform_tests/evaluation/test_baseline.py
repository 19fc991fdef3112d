"""The H2O AutoML baseline on a small frame: a real local H2O JVM, bound to 127.0.0.1."""

from __future__ import annotations

import numpy as np
import pandas as pd
import psutil
import pytest

from llama_platform.evaluation.baseline import (
    ablation_variants,
    feature_groups,
    h2o_cluster,
    text_features,
    train_h2o_baseline,
    usable_feature_columns,
)
from llama_platform.evaluation.metrics import Predictions, choose_labels, constant_predictions, evaluate_predictions, indicator
from llama_platform.training.prompts import LABELS
from llama_platform_tests.training.synthetic import synthetic_training_set


def test_feature_selection_and_text_features():
    df = pd.DataFrame({"title_len": [1, 2], "is_closed": [True, False], "n_comments": [3, 4],
                       "has_code_block": [True, False], "prompt": ["a", "b"], "repo_issues_before": [0, 1]})
    assert usable_feature_columns(df) == ["title_len", "has_code_block", "repo_issues_before"]
    train, (other,) = text_features(["crash in parser", "add an option", "崩溃 解析器", "文档 错误"] * 5,
                                    [["parser crash", "文档"]], svd_dims=8)
    assert train.shape == (20, 8) and other.shape == (2, 8)
    cols = ["title_len", "repo_issues_before", "author_first_time"]
    assert feature_groups(cols) == {"repo": ["repo_issues_before"], "author": ["author_first_time"], "issue": ["title_len"]}
    assert ablation_variants(cols) == {
        "all": cols, "without repo": ["title_len", "author_first_time"], "without author": ["title_len", "repo_issues_before"],
        "without issue": ["repo_issues_before", "author_first_time"], "text only": []}


@pytest.mark.slow
def test_h2o_cluster_listens_on_localhost_only_and_stops():
    with h2o_cluster(nthreads=1, max_mem_size="512M") as conn:
        pid = conn.local_server._process.pid
        listening = [c.laddr.ip for c in psutil.Process(pid).connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        assert listening and all(ip in ("127.0.0.1", "::ffff:127.0.0.1") for ip in listening), listening
    try:
        psutil.Process(pid).wait(timeout=30)  # our child: waiting also reaps it
    except psutil.NoSuchProcess:
        pass
    assert not psutil.pid_exists(pid)


@pytest.mark.slow
def test_h2o_baseline_beats_majority_on_held_out_rows():
    df = synthetic_training_set(n=240, seed=1)
    df["text"] = df["prompt"]
    df["author_prior_issues"] = np.arange(len(df)) % 5
    split = {s: df[df["split"] == s] for s in ("train", "val", "test")}
    result = train_h2o_baseline(split["train"], split["val"], split["test"], LABELS, ["author_prior_issues"],
                                max_runtime_secs=10, nthreads=1, max_mem_size="512M", svd_dims=16,
                                variants={"text only": []})
    test = split["test"]
    assert result.scores.shape == (len(test), len(LABELS))
    assert np.allclose(result.scores.sum(axis=1), 1.0, atol=1e-3)
    assert result.leader and len(result.leaderboard) >= 1
    assert set(result.variant_scores) == {"text only"} and result.variant_scores["text only"].shape == result.scores.shape
    truth = indicator(test["labels"].tolist(), LABELS)
    h2o = evaluate_predictions(truth, Predictions("h2o", result.scores, choose_labels(result.scores, 0.3)), LABELS, n_resamples=200)
    majority = evaluate_predictions(truth, constant_predictions("m", len(test), LABELS, "bug"), LABELS, n_resamples=200)
    assert h2o["micro_f1"]["value"] > majority["micro_f1"]["value"] + 0.3, (h2o["micro_f1"], majority["micro_f1"])
