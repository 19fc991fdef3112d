"""Stage 3: the dataset versioner. Cleaned issues -> an immutable, content-addressed snapshot with splits."""

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MetadataValue,
    ResourceParam,
    asset,
    asset_check,
)
from pydantic import Field

from llama_platform import __version__
from llama_platform.assets.automation import follow_upstream
from llama_platform.assets.common import bar_plot, check_result, code_version_of, png_markdown
from llama_platform.assets.lineage import upstream_metadata, upstream_partitions
from llama_platform.data import quality
from llama_platform.data.snapshot import list_snapshots, read_snapshot, read_snapshot_columns, write_snapshot_streaming
from llama_platform.data.store import StoreLocation
from llama_platform.data.streaming import cleaned_frame, with_splits
from llama_platform.resources.io_manager import ParquetIOManager
from llama_platform.resources.object_store import ObjectStoreResource


class SnapshotConfig(Config):
    label_drift_threshold: float = Field(
        default=quality.DEFAULT_DRIFT_THRESHOLD,
        ge=0.0,
        le=1.0,
        description="warn when the primary-label distribution moves more than this (total variation distance) "
        "from the previous snapshot's",
    )


def _previous_label_counts(store: StoreLocation) -> tuple[str | None, dict[str, int] | None, str]:
    """(version, primary-label counts, problem) of the newest snapshot in the store, before this write."""
    manifests = list_snapshots(store)
    if not manifests:
        return None, None, ""
    manifest = manifests[-1]
    version = manifest["version"]
    counts = quality.manifest_label_counts(manifest)
    if counts is not None:
        return version, counts, ""
    try:  # manifests without label counts (older format): count from the rows
        previous, _ = read_snapshot(store, version)
    except Exception as exc:  # an unreadable old snapshot must not stop a new one: the check says why
        return version, None, f"previous snapshot {version} unreadable: {type(exc).__name__}"
    return version, previous["label"].value_counts().to_dict(), ""


@asset(
    group_name="preprocessing",
    automation_condition=follow_upstream,
    description="Immutable, content-addressed dataset snapshot in the object store, split train/val/test by duplicate cluster.",
    kinds={"deltalake", "s3"},
    code_version=code_version_of("assets/snapshot.py", "data"),
    tags={"stage": "snapshot"},
    deps=["cleaned_issues"],
    check_specs=[
        AssetCheckSpec(
            "no_cluster_straddles_splits",
            asset="issue_snapshot",
            blocking=True,
            description="a near-duplicate cluster lives in exactly one split (no leakage)",
        ),
        AssetCheckSpec(
            "label_drift",
            asset="issue_snapshot",
            blocking=False,
            description="primary-label distribution vs the previous snapshot (total variation distance <= threshold)",
        ),
    ],
)
def issue_snapshot(
    context: AssetExecutionContext,
    config: SnapshotConfig,
    object_store: ObjectStoreResource,
    parquet_io_manager: ResourceParam[ParquetIOManager],  # an IO manager, used here to stream its input
):
    """Streams cleaned_issues (batch by batch, never whole) into a format-3 Delta snapshot."""
    store = object_store.location()

    def batches():  # called twice by the writer: once to hash and count, once to write
        for batch in parquet_io_manager.iter_batches(["cleaned_issues"], log=context.log):
            yield with_splits(cleaned_frame(batch))

    lineage = {
        "raw_partitions": upstream_partitions(context, "raw_issues"),
        "code_version": __version__,
    }
    previous_version, previous_counts, problem = _previous_label_counts(store)
    info = write_snapshot_streaming(store, batches, lineage)
    split_counts = {s: n for s, n in info.row_counts.items() if n}
    label_counts = quality.manifest_label_counts(info.manifest) or {}
    context.log.info(f"snapshot {info.version}: {split_counts} at {info.uri}")

    # Read back from the written table: the stored rows are what must not leak across splits.
    leakage = quality.no_cluster_straddles_splits(read_snapshot_columns(store, info.version, ["dup_cluster", "split"]))
    if problem:
        drift = quality.CheckOutcome(False, {"previous_version": previous_version}, problem)
    else:
        drift = quality.label_drift(label_counts, previous_counts, config.label_drift_threshold, previous_version)
    return MaterializeResult(
        metadata={
            "snapshot_version": info.version,
            "content_hash": info.content_hash,
            # s3:// opens nothing in a browser: text (copyable), not a link.
            "uri": MetadataValue.text(info.uri) if info.uri.startswith("s3://") else MetadataValue.path(info.uri),
            "row_count": MetadataValue.int(sum(split_counts.values())),
            "split_counts": MetadataValue.json(split_counts),
            "label_counts": MetadataValue.json(label_counts),
            "splits": png_markdown(bar_plot(split_counts, "rows per split"), "splits"),
            "raw_partitions": MetadataValue.json(lineage["raw_partitions"]),
            "code_version": __version__,
            "previous_version": previous_version or "",
        },
        check_results=[
            check_result(leakage, check_name="no_cluster_straddles_splits"),
            check_result(drift, warn=True, check_name="label_drift"),
        ],
    )


@asset_check(
    asset="issue_snapshot",
    blocking=True,
    description="the stored snapshot reads back (content hash verified) and matches SnapshotSchema",
)
def snapshot_schema(context: AssetCheckExecutionContext, object_store: ObjectStoreResource) -> AssetCheckResult:
    version = upstream_metadata(context, "issue_snapshot")["snapshot_version"]
    try:
        df, _ = read_snapshot(object_store.location(), version)
    except Exception as exc:  # missing, corrupted or tampered with: the check fails and says why
        return AssetCheckResult(
            passed=False,
            severity=AssetCheckSeverity.ERROR,
            description=f"snapshot {version} could not be read back: {type(exc).__name__}: {exc}",
            metadata={"snapshot_version": version},
        )
    return check_result(quality.snapshot_schema(df), metadata={"snapshot_version": version})
