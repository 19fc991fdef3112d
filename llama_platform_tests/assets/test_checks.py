"""The validator's asset checks, run by Dagster on real assets over a local store.

Upstream assets are replaced by small stub assets of the same key where a test needs crafted data
(e.g. a cleaned frame with a secret that redaction would never let through); the checks and the
downstream assets under test are the real ones.
"""

from __future__ import annotations

import pandas as pd
import pytest
from pyarrow.fs import FileSelector, FileType
from dagster import AssetCheckSeverity, AssetKey, AssetSelection, materialize

from llama_platform.assets.cleaning import clean, no_secret_survives
from llama_platform.assets.snapshot import issue_snapshot, snapshot_schema
from llama_platform.data.snapshot import list_snapshots
from llama_platform.data.store import open_store
from llama_platform.resources.io_manager import ParquetIOManager
from llama_platform.resources.object_store import ObjectStoreResource
from llama_platform_tests.assets.factories import cleaned_frame, raw_frame, stub

GITHUB_TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


def evaluations(result) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def materialized(instance, key: str) -> bool:
    return instance.get_latest_materialization_event(AssetKey(key)) is not None


def test_clean_data_passes_every_check(instance, resources, store_url):
    result = materialize(
        [stub("raw_issues", raw_frame()), clean, no_secret_survives, issue_snapshot, snapshot_schema],
        instance=instance,
        resources=resources,
    )
    assert result.success
    checks = evaluations(result)
    assert set(checks) == {
        "reconciliation", "no_secret_survives", "no_cluster_straddles_splits", "label_drift", "snapshot_schema",
    }  # fmt: skip
    assert all(c.passed for c in checks.values()), {k: c.description for k, c in checks.items()}

    # Reconciliation is reported per reason, and adds up.
    rec = {k: v.value for k, v in checks["reconciliation"].metadata.items()}
    assert rec["filtered_by_reason"].get("pull_request") == 1 and rec["filtered_by_reason"].get("bot_author") == 1
    assert sum(rec["quarantined_by_reason"].values()) == rec["quarantined"] == 1
    assert rec["raw"] == rec["cleaned"] + rec["quarantined"] + rec["filtered"] and rec["unaccounted"] == 0
    assert checks["no_secret_survives"].metadata["rows_scanned"].value == rec["cleaned"]
    # First snapshot: nothing to drift from.
    assert "no previous snapshot" in checks["label_drift"].description
    assert len(list_snapshots(open_store(store_url))) == 1


def test_surviving_secret_blocks_the_snapshot(instance, resources, store_url):
    cleaned = cleaned_frame()
    cleaned.loc[2, "body"] += f"\nmy token is {GITHUB_TOKEN} oops"
    leaked_id = cleaned.loc[2, "issue_id"]

    result = materialize(
        [stub("cleaned_issues", cleaned), no_secret_survives, issue_snapshot, snapshot_schema],
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )
    check = evaluations(result)["no_secret_survives"]
    assert not check.passed and check.blocking and check.severity == AssetCheckSeverity.ERROR
    sample = check.metadata["sample"].value
    assert sample == {leaked_id: ["body:SECRET:GitHubToken"]}
    # The check names the issue and the kind of secret, never the secret itself.
    assert GITHUB_TOKEN not in str(check.metadata) and GITHUB_TOKEN not in (check.description or "")

    # Dagster skipped everything downstream of the failed blocking check: no snapshot anywhere.
    assert materialized(instance, "cleaned_issues")
    assert not materialized(instance, "issue_snapshot")
    assert not result.success and not any(e.step_key == "issue_snapshot" for e in result.all_events)  # never started
    assert list_snapshots(open_store(store_url)) == []


def test_label_drift_warns_without_blocking_and_threshold_is_configurable(instance, resources):
    def snapshot(cleaned: pd.DataFrame, threshold: float | None = None):
        config = {"ops": {"issue_snapshot": {"config": {"label_drift_threshold": threshold}}}} if threshold else None
        result = materialize(
            [stub("cleaned_issues", cleaned), issue_snapshot], instance=instance, resources=resources, run_config=config
        )
        assert result.success  # a warning never fails the run
        return evaluations(result)["label_drift"]

    first = snapshot(cleaned_frame())
    assert first.passed

    # Everything relabelled "bug": half the issues had "bug" as primary label before, so half the mass moved.
    drift = snapshot(cleaned_frame(labels=(("bug",),)))
    assert not drift.passed and not drift.blocking and drift.severity == AssetCheckSeverity.WARN
    assert drift.metadata["total_variation"].value == pytest.approx(0.5)
    assert drift.metadata["previous_shares"].value == {"bug": 0.5, "feature": 0.25, "question": 0.25}
    assert drift.metadata["current_shares"].value == {"bug": 1.0}
    assert materialized(instance, "issue_snapshot")

    # A laxer threshold from run config lets the same kind of shift pass.
    relaxed = snapshot(cleaned_frame(labels=(("feature",),)), threshold=1.0)
    assert relaxed.passed and relaxed.metadata["threshold"].value == 1.0
    assert relaxed.metadata["total_variation"].value == 1.0


def test_unreadable_snapshot_fails_the_schema_check(instance, resources, store_url):
    materialize([stub("cleaned_issues", cleaned_frame()), issue_snapshot], instance=instance, resources=resources)
    version = instance.get_latest_materialization_event(AssetKey("issue_snapshot")).asset_materialization.metadata[
        "snapshot_version"
    ].value
    # Damage the stored snapshot: keep its manifest, lose its rows.
    store = open_store(store_url)
    for info in store.fs.get_file_info(FileSelector(store.path(f"snapshots/{version}"))):
        if info.base_name != "manifest.json":
            (store.fs.delete_dir if info.type == FileType.Directory else store.fs.delete_file)(info.path)

    result = materialize(
        [stub("cleaned_issues", cleaned_frame()), issue_snapshot, snapshot_schema],
        selection=AssetSelection.checks(snapshot_schema),  # the check alone, on what is stored
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )
    check = evaluations(result)["snapshot_schema"]
    assert not check.passed and check.blocking
    assert version in check.description and "could not be read back" in check.description


def test_checks_run_against_an_s3_store(instance, s3_server, s3_bucket):
    url = f"s3://{s3_bucket}/platform"
    store = dict(url=url, endpoint_url=s3_server.endpoint_url, access_key=s3_server.access_key,
                 secret_key=s3_server.secret_key)  # fmt: skip
    result = materialize(
        [stub("cleaned_issues", cleaned_frame()), no_secret_survives, issue_snapshot, snapshot_schema],
        instance=instance,
        resources={"parquet_io_manager": ParquetIOManager(**store), "object_store": ObjectStoreResource(**store)},
    )
    checks = evaluations(result)
    assert result.success and all(c.passed for c in checks.values()), {k: c.description for k, c in checks.items()}
    assert checks["snapshot_schema"].metadata["rows"].value == len(cleaned_frame())
    assert s3_server.secret_key not in str({k: c.metadata for k, c in checks.items()})
