"""Small helpers for asset metadata the UI shows: previews, schemas, plots."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    DagsterType,
    MetadataValue,
    TableColumn,
    TableSchema,
    TypeCheck,
)
from dagster_pandera import pandera_schema_to_dagster_type

from llama_platform.resources.io_manager import ParquetParts

PREVIEW_ROWS = 10
PREVIEW_CELL_CHARS = 80


def preview(df: pd.DataFrame, columns: list[str] | None = None) -> MetadataValue:
    view = df[columns] if columns else df
    view = view.head(PREVIEW_ROWS).copy()
    for col in view.columns:
        view[col] = view[col].map(lambda v: str(v)[:PREVIEW_CELL_CHARS])
    return MetadataValue.md(view.to_markdown(index=False) if len(view) else "_empty_")


def column_schema(df: pd.DataFrame) -> MetadataValue:
    return MetadataValue.table_schema(
        TableSchema(columns=[TableColumn(name=str(c), type=str(t)) for c, t in df.dtypes.items()])
    )


def table_type(schema) -> DagsterType:
    """The pandera schema's Dagster type (schema shown in the UI, frames validated), which also
    accepts `ParquetParts`: a table streamed to disk, whose producer validated it part by part."""
    frame_type = pandera_schema_to_dagster_type(schema)
    required = set(schema.to_schema().columns)

    def check(context, value) -> TypeCheck:
        if not isinstance(value, ParquetParts):
            return frame_type.type_check(context, value)
        missing = [str(p) for p in value.paths if not Path(p).exists()]
        if missing or not value.paths:
            return TypeCheck(False, description=f"parts missing: {missing[:3] or 'none given'}")
        absent = required - set(pq.read_schema(value.paths[0]).names)
        return TypeCheck(not absent, description=f"columns missing: {sorted(absent)}" if absent else None,
                         metadata={"parts": len(value.paths)})

    return DagsterType(
        type_check_fn=check,
        name=frame_type.unique_name,
        description=frame_type.description,
        metadata=frame_type.metadata,
    )


def png_markdown(png: bytes, alt: str) -> MetadataValue:
    """Embed a PNG in markdown metadata so the plot shows inline in the asset's page."""
    return MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")


def bar_plot(counts: dict, title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    keys = [str(k) for k in counts]
    ax.bar(keys, list(counts.values()), color="#4f46e5")
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def check_result(outcome, warn: bool = False, **kwargs) -> AssetCheckResult:
    """An AssetCheckResult from a data.quality.CheckOutcome (ERROR severity unless `warn`);
    `metadata=` adds entries in front of the outcome's, other kwargs (check_name, asset_key) pass on."""
    extra = kwargs.pop("metadata", {})
    return AssetCheckResult(
        passed=outcome.passed,
        severity=AssetCheckSeverity.WARN if warn else AssetCheckSeverity.ERROR,
        description=outcome.description,
        metadata={**extra, **outcome.metadata},
        **kwargs,
    )
