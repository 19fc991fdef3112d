"""Smoke test of benchmarks/serve_load.py: both modes run against real server processes and report.

The flat-cost stand-in (a model call costs the same whatever the batch, as on an accelerator) is used so
this stays fast and tells whether the batcher batches; the real-model figures come from the benchmark.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "serve_load.py"


@pytest.mark.slow
def test_serve_load_reports_both_modes_and_batching_pays_when_a_call_costs_the_same():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--flat-cost-ms", "20", "--requests", "32"],
                          capture_output=True, text=True, timeout=300)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["errors"] == 0 and summary["dropped"] == 0, proc.stdout
    # Same workers in both modes; only the batch differs. Batching broken would give about 1.
    assert summary["batched_ratio"] > 2, proc.stdout
    for mode in ("batched", "unbatched"):
        rows = [line for line in proc.stdout.splitlines() if line.startswith(mode + " ")]
        assert len(rows) == 3, proc.stdout  # 1, 4 and 16 clients
    assert proc.returncode == 0

