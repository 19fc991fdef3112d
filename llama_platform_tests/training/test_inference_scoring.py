"""Cached-prefix label scoring (inference.py `_label_logprobs`) against the exact reference: one full
forward per (prompt, label) pair."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import llama_platform.training.inference as inference
from llama_platform.training.inference import TriageModel
from llama_platform.training.moe import RoutedLlama4TextMoe


@pytest.fixture(scope="module")
def model(trained) -> TriageModel:
    return TriageModel.load(Path(trained["config"].output_dir) / "model")


@pytest.fixture(scope="module")
def prompts(training_set) -> list[str]:
    # Mixed lengths, so every chunk pads; all fit seq_len (long ones are checked separately).
    return training_set["prompt"].iloc[:23].tolist()


def fits(model: TriageModel, prompts: list[str]) -> list[str]:
    longest = max(len(c) for c in model._candidate_ids())
    return [p for p in prompts if len(model.tokenizer(p).input_ids) + longest <= model.seq_len]


def test_cached_prefix_scores_equal_the_full_forward(model, prompts):
    prompts = fits(model, prompts)
    assert len({len(model.tokenizer(p).input_ids) for p in prompts}) > 3, "prompts of one length test no padding"
    model.batch_size = 5  # several chunks, the last one short
    try:
        fast, exact = model._label_logprobs(prompts), model._reference_label_logprobs(prompts)
    finally:
        model.batch_size = 32
    assert fast.shape == (len(prompts), len(model.labels))
    torch.testing.assert_close(fast, exact, atol=1e-4, rtol=1e-4)


def test_multi_token_labels_run_on_the_cached_prompt(model, prompts, monkeypatch):
    """Labels of several tokens (real tokenizers split most words) take the cache path."""
    monkeypatch.setattr(inference, "format_completion", lambda labels: " " + ", ".join(labels))
    monkeypatch.setattr(model, "labels", ("bug", "documentation request", "feature flag option", "zq xw"))
    lengths = [len(c) for c in model._candidate_ids()]
    assert max(lengths) > 2 and len(set(lengths)) > 1, lengths
    prompts = fits(model, prompts)
    torch.testing.assert_close(model._label_logprobs(prompts), model._reference_label_logprobs(prompts),
                               atol=1e-4, rtol=1e-4)


def test_long_prompts_are_cut_at_their_start_as_in_training(model):
    """A prompt over seq_len loses its start, never the cue. With labels of equal token length the
    reference cuts each (prompt, label) pair to the same window, so the two paths must agree."""
    assert len({len(c) for c in model._candidate_ids()}) == 1
    long = "Title: crash\nBody: " + "segfault in the parser " * 300 + "\nLabels:"
    assert len(model.tokenizer(long).input_ids) > 2 * model.seq_len
    torch.testing.assert_close(model._label_logprobs([long]), model._reference_label_logprobs([long]),
                               atol=1e-4, rtol=1e-4)


def test_routed_experts_and_reference_fallback(model, prompts):
    assert any(isinstance(m, RoutedLlama4TextMoe) for m in model.model.modules())
    assert model._shared_prefix_ok()
    fast = model.predict(prompts[:4])
    # Past one attention chunk the cache positions would be read by chunked attention: the exact path runs.
    config = model.model.config
    old = config.attention_chunk_size
    config.attention_chunk_size = model.seq_len - 1
    try:
        assert not model._shared_prefix_ok()
        slow = model.predict(prompts[:4])
    finally:
        config.attention_chunk_size = old
    for a, b in zip(fast, slow):
        assert a["labels"] == b["labels"]
        assert a["scores"] == pytest.approx(b["scores"], abs=1e-4)


def test_serve_load_benchmark_measures_the_model_alone(trained):
    """benchmarks/serve_load.py's bound on what batching can give: the model's own batch-1 vs full-batch cost."""
    bench = Path(__file__).resolve().parents[2] / "benchmarks"
    sys.path.insert(0, str(bench))
    try:
        from serve_load import model_batch_gain
    finally:
        sys.path.remove(str(bench))
    gain = model_batch_gain(Path(trained["config"].output_dir) / "model", max_batch=8, rounds=1)
    assert gain["ms_per_prompt_batch_1"] > 0 and gain["ms_per_prompt_full_batch"] > 0
    assert gain["gain"] == pytest.approx(gain["ms_per_prompt_batch_1"] / gain["ms_per_prompt_full_batch"], rel=0.02)
