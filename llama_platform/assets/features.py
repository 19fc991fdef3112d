"""Stages 4-5: Feast features from the snapshot, and the point-in-time-correct, prompt-formatted training set."""

import pandas as pd
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, Output, asset

from llama_platform.assets.automation import follow_upstream
from llama_platform.assets.common import code_version_of, column_schema, preview
from llama_platform.assets.lineage import upstream_metadata
from llama_platform.data.snapshot import read_snapshot
from llama_platform.features.online import prompt_feature_columns
from llama_platform.features.sources import build_feature_tables
from llama_platform.features.store import historical_features, materialize, open_feature_store, write_feature_store
from llama_platform.resources.feast import FeastResource
from llama_platform.resources.object_store import ObjectStoreResource
from llama_platform.training.prompts import format_completion, format_prompt


def _snapshot(context: AssetExecutionContext, object_store: ObjectStoreResource) -> tuple[pd.DataFrame, str]:
    version = upstream_metadata(context, "issue_snapshot")["snapshot_version"]
    df, _manifest = read_snapshot(object_store.location(), version)
    return df, version


@asset(
    group_name="features",
    automation_condition=follow_upstream,
    deps=["issue_snapshot"],
    description="Feast feature views (issue, repo, author) applied and materialised into the sqlite online store.",
    kinds={"feast", "sqlite"},
    code_version=code_version_of("assets/features.py", "features"),
    tags={"stage": "features"},
)
def issue_features(
    context: AssetExecutionContext, object_store: ObjectStoreResource, feast: FeastResource
) -> MaterializeResult:
    snapshot, version = _snapshot(context, object_store)
    tables = build_feature_tables(snapshot)
    cfg = feast.repo_config()
    store = write_feature_store(cfg, tables)
    start = snapshot["created_at"].min().to_pydatetime()
    end = snapshot["created_at"].max().to_pydatetime() + pd.Timedelta(days=1)
    materialize(store, start, end)
    views = sorted(fv.name for fv in store.list_feature_views())
    context.log.info(f"feast: applied {views}, materialised {start:%Y-%m-%d}..{end:%Y-%m-%d}")
    return MaterializeResult(
        metadata={
            "snapshot_version": version,
            "feature_views": MetadataValue.json(views),
            "rows_per_view": MetadataValue.json({k: len(v) for k, v in tables.items()}),
            "repo_path": MetadataValue.path(str(cfg.repo_dir)),
            "online_store": MetadataValue.path(str(cfg.data_dir / "online.db")),
        }
    )


@asset(
    group_name="features",
    automation_condition=follow_upstream,
    deps=["issue_features", "issue_snapshot"],
    io_manager_key="parquet_io_manager",
    description="Prompt-formatted examples (issue -> labels) joined point-in-time with Feast features.",
    kinds={"feast", "parquet"},
    code_version=code_version_of("assets/features.py", "features", "training/prompts.py"),
    tags={"stage": "features"},
)
def training_set(
    context: AssetExecutionContext, object_store: ObjectStoreResource, feast: FeastResource
) -> Output[pd.DataFrame]:
    snapshot, version = _snapshot(context, object_store)
    store = open_feature_store(feast.repo_config())
    entity_df = snapshot[["issue_id", "repo", "author"]].copy()
    entity_df["event_timestamp"] = snapshot["created_at"]
    feats = historical_features(store, entity_df)
    # Feature values win over same-named snapshot columns (e.g. n_comments): they are what Feast serves.
    feature_cols = [c for c in feats.columns if c not in ("issue_id", "repo", "author", "event_timestamp")]
    df = snapshot.drop(columns=[c for c in feature_cols if c in snapshot.columns]).merge(
        feats[["issue_id", *feature_cols]], on="issue_id", how="left"
    )
    if len(df) != len(snapshot):
        raise RuntimeError(f"feature join changed the row count: {len(snapshot)} -> {len(df)}")
    prompt_cols = prompt_feature_columns(feature_cols)
    df["prompt"] = [
        format_prompt(r.title, r.body, r.repo, {c: getattr(r, c) for c in prompt_cols})
        for r in df.itertuples(index=False)
    ]
    df["completion"] = [format_completion(list(r.labels), primary=r.label) for r in df.itertuples(index=False)]
    out = df[["issue_id", "split", "prompt", "completion", "labels", "label", *feature_cols]]
    split_counts = out["split"].value_counts().to_dict()
    context.log.info(f"training set: {split_counts}")
    return Output(
        out,
        metadata={
            "snapshot_version": version,
            "row_count": MetadataValue.int(len(out)),
            "split_counts": MetadataValue.json(split_counts),
            "feature_columns": MetadataValue.json(feature_cols),
            "prompt_features": MetadataValue.json(prompt_cols),
            "example_prompt": MetadataValue.md(f"```\n{out['prompt'].iloc[0]}{out['completion'].iloc[0]}\n```") if len(out) else "",
            "preview": preview(out, ["issue_id", "split", "label"]),
            "dagster/column_schema": column_schema(out),
        },
    )
