"""Snapshot of the asset graph (keys, deps, partitions, groups, checks): drift shows up in review.

After an intended change, regenerate with `UPDATE_GRAPH_SNAPSHOT=1 pytest llama_platform_tests/test_asset_graph.py`
and commit the JSON diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from llama_platform.definitions import defs

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"


def describe_graph() -> dict:
    graph = defs.resolve_asset_graph()
    out = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        partitions = node.partitions_def
        out[key.to_user_string()] = {
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
            "group": node.group_name,
            "partitions": None if partitions is None else {
                "type": type(partitions).__name__,
                "name": getattr(partitions, "name", None),
                "dimensions": {d.name: type(d.partitions_def).__name__ for d in partitions.partitions_defs}
                if hasattr(partitions, "partitions_defs") else None,
            },
            "backfill_policy": node.backfill_policy.policy_type.value.lower() if node.backfill_policy else None,
            "automation": node.automation_condition.get_label() if node.automation_condition else None,
            "checks": sorted(c.name for c in node.check_keys),
        }
    return {
        "assets": out,
        "jobs": sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")),
        "sensors": sorted(s.name for s in defs.sensors or []),
    }


def test_asset_graph_matches_snapshot():
    current = describe_graph()
    if os.environ.get("UPDATE_GRAPH_SNAPSHOT") == "1" or not SNAPSHOT.exists():
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text())


def test_graph_is_the_designed_spine():
    assets = describe_graph()["assets"]
    assert assets["cleaned_issues"]["deps"] == ["raw_issues"]
    assert assets["raw_issues"]["partitions"]["type"] == "MultiPartitionsDefinition"
    assert assets["raw_issues"]["partitions"]["dimensions"] == {"repo": "DynamicPartitionsDefinition", "window": "MonthlyPartitionsDefinition"}
    assert assets["raw_issues"]["backfill_policy"] == "single_run"
    assert assets["training_set"]["automation"] is not None
    assert "reconciliation" in assets["cleaned_issues"]["checks"]
    assert assets["deployed_endpoint"]["deps"] == ["finetuned_checkpoint", "model_evaluation"]
