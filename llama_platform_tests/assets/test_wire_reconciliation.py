"""The clean asset's blocking reconciliation check holds on wire-format forge data with malformed items
(numberless items, a null updated_at, a legacy null `pull_request`), fetched by the real connector."""

from __future__ import annotations

from dagster import materialize

from llama_platform.assets.cleaning import clean
from llama_platform.replay.forge import ReplayForgeServer
from llama_platform.sources.github import GitHubForge
from llama_platform.sources.records import raw_frame
from llama_platform.sources.windows import merge_versions
from llama_platform_tests.assets.factories import stub
from llama_platform_tests.support import wire_fixtures as W


def test_reconciliation_holds_on_malformed_wire_data(instance, resources, tmp_path):
    with ReplayForgeServer(W.write_wire_corpus(tmp_path / "wire")) as server:
        rows = list(GitHubForge(server.github_url, None).fetch_repo(W.REPO))
    raw = merge_versions(None, raw_frame(rows))
    assert len(raw) == len(W.legacy_repo()[0])  # every item stored, none collapsed
    result = materialize([stub("raw_issues", raw), clean], instance=instance, resources=resources)
    assert result.success
    check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "reconciliation")
    rec = {k: v.value for k, v in check.metadata.items()}
    assert check.passed, check.description
    assert rec["raw"] == len(raw) == rec["cleaned"] + rec["quarantined"] + rec["filtered"] and rec["unaccounted"] == 0
    assert rec["quarantined_by_reason"] == {"malformed:missing_field": 2, "malformed:bad_timestamp": 1}
    assert rec["filtered_by_reason"].get("pull_request") == 1  # the real PR only, not the legacy null one
