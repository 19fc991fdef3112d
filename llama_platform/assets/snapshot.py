"""Stage 3: the dataset versioner. Cleaned issues -> an immutable, content-addressed snapshot with splits."""

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from llama_platform import __version__
from llama_platform.assets.common import bar_plot, png_markdown
from llama_platform.assets.lineage import upstream_partitions
from llama_platform.data.snapshot import write_snapshot
from llama_platform.data.splits import assign_splits
from llama_platform.resources.object_store import ObjectStoreResource


@asset(
    group_name="preprocessing",
    description="Immutable, content-addressed dataset snapshot in the object store, split train/val/test by duplicate cluster.",
    kinds={"parquet", "s3"},
    check_specs=[
        AssetCheckSpec(
            "no_cluster_straddles_splits",
            asset="issue_snapshot",
            blocking=True,
            description="a near-duplicate cluster lives in exactly one split (no leakage)",
        )
    ],
)
def issue_snapshot(
    context: AssetExecutionContext, cleaned_issues: pd.DataFrame, object_store: ObjectStoreResource
):
    df = cleaned_issues.copy()
    df["split"] = assign_splits(df["dup_cluster"])
    lineage = {
        "raw_partitions": upstream_partitions(context, "raw_issues"),
        "code_version": __version__,
    }
    info = write_snapshot(object_store.location(), df, lineage)
    split_counts = df["split"].value_counts().to_dict()
    straddling = int((df.groupby("dup_cluster")["split"].nunique() > 1).sum())
    context.log.info(f"snapshot {info.version}: {split_counts} at {info.uri}")
    return MaterializeResult(
        metadata={
            "snapshot_version": info.version,
            "content_hash": info.content_hash,
            "uri": MetadataValue.url(info.uri) if info.uri.startswith("s3://") else MetadataValue.path(info.uri),
            "row_count": MetadataValue.int(len(df)),
            "split_counts": MetadataValue.json(split_counts),
            "splits": png_markdown(bar_plot(split_counts, "rows per split"), "splits"),
            "raw_partitions": MetadataValue.json(lineage["raw_partitions"]),
            "code_version": __version__,
        },
        check_results=[
            AssetCheckResult(
                check_name="no_cluster_straddles_splits",
                passed=straddling == 0,
                metadata={"straddling_clusters": straddling},
            )
        ],
    )
