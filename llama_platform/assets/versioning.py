"""Data versions and staleness: what lets a second `llama-platform run` with unchanged inputs and
code build nothing downstream of unchanged data.

Every asset carries a code version (common.code_version_of). raw_issues records each window's
content hash; cleaned_issues takes as data version a hash of its code version and the raw rows'
payload hashes. Below it, Dagster's own logical data versions (code version + input data versions)
and its stale status decide. The raw -> cleaned edge is decided here because Dagster's stale status
ignores a dependency on 100 or more upstream partitions (SKIP_PARTITION_DATA_VERSION_DEPENDENCY_THRESHOLD),
and raw_issues has repos x months of them.
"""

from __future__ import annotations

import hashlib

from dagster import AssetKey, DagsterInstance
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._time import get_current_datetime

DATA_VERSION_TAG = "dagster/data_version"
CODE_VERSION_TAG = "dagster/code_version"


def raw_fingerprint(io_manager, partition_keys) -> str:
    """Hash of every stored raw row's payload hash, over the given partitions in key order (only
    the payload_sha256 column is read)."""
    digest = hashlib.sha256()
    keys = sorted(partition_keys, key=lambda k: "" if k is None else str(k))  # None: unpartitioned
    for batch in io_manager.iter_batches(["raw_issues"], keys, batch_rows=50_000, columns=["payload_sha256"]):
        for value in batch.column(0).to_pylist():
            digest.update(str(value).encode())
    return digest.hexdigest()


def cleaned_data_version(code_version: str, fingerprint: str) -> str:
    return hashlib.sha256(f"{code_version}:{fingerprint}".encode()).hexdigest()[:16]


def latest_tags(instance: DagsterInstance, key: str) -> dict | None:
    event = instance.get_latest_materialization_event(AssetKey(key))
    if event is None or event.dagster_event is None:
        return None
    return dict(event.dagster_event.event_specific_data.materialization.tags or {})


def clean_is_current(instance: DagsterInstance, expected_version: str) -> str | None:
    """None when cleaned_issues (and quarantined_issues) were built from these raw rows by this
    code; otherwise why they must be rebuilt."""
    for key in ("cleaned_issues", "quarantined_issues"):
        tags = latest_tags(instance, key)
        if tags is None:
            return f"{key} was never materialised"
        if tags.get(DATA_VERSION_TAG) != expected_version:
            return f"{key}: raw data or cleaning code changed since it was built"
    return None


def stale_reason(instance: DagsterInstance, asset_graph, keys: list[str]) -> str | None:
    """None when every key is fresh by Dagster's stale status (same code version, same upstream
    data versions as when it was built); otherwise the root causes in words."""
    # What the UI's "stale" badge uses (dagster's own test helper builds it the same way).
    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=instance, asset_graph=asset_graph,
    )
    resolver = CachingStaleStatusResolver(instance=instance, asset_graph=asset_graph, loading_context=view)
    reasons = []
    for name in keys:
        key = AssetKey(name)
        status = resolver.get_status(key)
        if status == StaleStatus.MISSING:
            reasons.append(f"{name} was never materialised")
        elif status == StaleStatus.STALE:
            causes = resolver.get_stale_root_causes(key) or resolver.get_stale_causes(key)
            reasons.extend(f"{c.key.asset_key.to_user_string()} {c.reason}" for c in causes[:3])
    return "; ".join(dict.fromkeys(reasons)) or None
