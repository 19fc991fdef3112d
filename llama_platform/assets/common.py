"""Small helpers for asset metadata the UI shows: previews, schemas, plots."""

from __future__ import annotations

import base64
import io

import pandas as pd
from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue, TableColumn, TableSchema

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
