"""Smoke test of benchmarks/train_throughput.py: both trainers run on the same data and report.

No timing assertions (performance claims come from the benchmark itself, not tests).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "train_throughput.py"


@pytest.fixture(scope="module")
def benchmark():
    spec = importlib.util.spec_from_file_location("train_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_benchmark_runs_both_trainers_on_the_same_data(benchmark, tmp_path):
    lines: list[str] = []
    out = tmp_path / "figures.json"
    report = benchmark.main(
        ["--preset", "tiny", "--examples", "12", "--hidden-size", "32", "--layers", "2", "--warmup", "0",
         "--device", "cpu", "--json", str(out)],
        log=lines.append,
    )
    assert json.loads(out.read_text()) == report
    baseline, platform = report["results"]["baseline"], report["results"]["platform"]
    # One epoch each over the same 12 examples, every step timed.
    assert baseline["real_tokens"] == platform["real_tokens"] > 12 * 40
    assert baseline["steps"] == 2  # batches of 8
    assert platform["steps"] == platform["timed_steps"] >= 1
    # Packing fills rows; dynamic padding pads each batch to its longest issue.
    assert platform["real_tokens"] / platform["padded_tokens"] > baseline["real_tokens"] / baseline["padded_tokens"]
    assert platform["extra"]["routed_experts"] and not baseline["extra"]["routed_experts"]
    assert report["speedup"] == round(platform["tokens_per_s"] / baseline["tokens_per_s"], 2)
    assert any(line.startswith("speedup = platform / baseline") for line in lines)


def test_examples_have_issue_like_lengths(benchmark):
    examples = benchmark.issue_like_examples(400, vocab_size=500, seed=0)
    lengths = sorted(len(e.input_ids) for e in examples)
    assert 300 <= lengths[len(lengths) // 2] <= 400  # median ~350
    assert lengths[0] >= 40 and lengths[-1] <= 2048
    for e in examples:
        response = sum(label != benchmark.IGNORE_INDEX for label in e.labels)
        assert 8 <= response <= 32 and e.labels[-response:] == e.input_ids[-response:]
