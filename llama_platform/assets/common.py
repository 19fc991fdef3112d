"""Small helpers for asset metadata the UI shows: previews, schemas, plots."""

from __future__ import annotations

import base64
import hashlib
import io
from functools import cache
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

PREVIEW_ROWS = 8
PREVIEW_CELL_CHARS = 60
FLOAT_DIGITS = 4
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


@cache
def code_version_of(*paths: str) -> str:
    """A code version for an asset: a short hash of the source it runs (files or packages under
    llama_platform/), so a code change, and only a code change, makes Dagster call it stale."""
    digest = hashlib.sha256()
    for rel in sorted(paths):
        target = PACKAGE_ROOT / rel
        files = sorted(target.rglob("*.py")) if target.is_dir() else [target]
        for f in files:
            digest.update(str(f.resolve().relative_to(PACKAGE_ROOT.parent)).encode())
            digest.update(f.read_bytes())
    return digest.hexdigest()[:12]


def _cell(value) -> str:
    """One preview cell: floats rounded, one line, long text trimmed with an ellipsis."""
    if isinstance(value, float):
        return f"{value:.{FLOAT_DIGITS}g}"
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ndarray":
        value = ", ".join(map(str, value))
    text = " ".join(str(value).split()).replace("|", "\\|")
    return text if len(text) <= PREVIEW_CELL_CHARS else text[: PREVIEW_CELL_CHARS - 1] + "…"


def preview(df: pd.DataFrame, columns: list[str] | None = None, rows: int = PREVIEW_ROWS) -> MetadataValue:
    """The first `rows` rows as a markdown table, every cell short enough to read without scrolling."""
    view = df[[c for c in columns if c in df.columns]] if columns else df
    view = view.head(rows).copy()
    for col in view.columns:
        view[col] = view[col].map(_cell)
    return MetadataValue.md(view.to_markdown(index=False) if len(view) else "_empty_")


# What each column of the cleaned issues / snapshot / training set means, shown in the UI's schemas.
COLUMN_DOCS = {
    "issue_id": "source:repo#number, unique per issue",
    "source": "forge: github or gitee",
    "repo": "OWNER/REPO on that forge",
    "number": "issue number as the forge shows it",
    "title": "title, normalised and redacted",
    "body": "body without bot/auto text, redacted",
    "comments_text": "human comments joined, redacted",
    "n_comments": "number of human comments kept",
    "labels": "canonical labels (bug, feature, question, docs), primary first",
    "label": "primary label: the training target",
    "lang": "detected language code",
    "state": "open or closed",
    "author": "pseudonymised author (<USER_xxxxxx>)",
    "author_association": "the author's relation to the repo (GitHub) / type (Gitee)",
    "created_at": "creation time, UTC",
    "updated_at": "last update time, UTC",
    "closed_at": "closing time, UTC (empty while open)",
    "dup_cluster": "near-duplicate cluster id: a cluster lives in one split",
    "redactions": "PII/secret spans replaced in this issue",
    "raw_hash": "payload hash of the raw record it came from",
    "split": "train, val or test",
    "prompt": "model input: the issue with its Feast features",
    "completion": "expected model output: the labels",
}


def column_schema(df: pd.DataFrame, descriptions: dict[str, str] | None = None) -> MetadataValue:
    """TableSchema with the columns' real dtypes (an object column says what it holds) and descriptions."""
    descriptions = {**COLUMN_DOCS, **(descriptions or {})}
    return MetadataValue.table_schema(
        TableSchema(columns=[
            TableColumn(name=str(c), type=_dtype_name(df[c]), description=descriptions.get(str(c)))
            for c in df.columns
        ])
    )


def _dtype_name(col: pd.Series) -> str:
    if col.dtype != object:
        return str(col.dtype)
    sample = col.dropna().head(50)
    kinds = sorted({type(v).__name__ for v in sample}) or ["null"]
    names = {"str": "string", "ndarray": "list", "dict": "struct"}
    return "|".join(names.get(k, k) for k in kinds)


def rounded(value: float, digits: int = FLOAT_DIGITS) -> MetadataValue:
    """A float metadata value a person can read (4 significant digits, not 17)."""
    return MetadataValue.float(float(f"{float(value):.{digits}g}"))


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

    keys = [str(k) for k in counts]
    # Readable at any number of bars: the figure widens with them, labels turn vertical past a
    # dozen, and past 40 only every n-th label is drawn.
    fig, ax = plt.subplots(figsize=(min(max(6.0, 0.28 * len(keys)), 14.0), 3.6))
    ax.bar(range(len(keys)), list(counts.values()), color="#4f46e5")
    step = max(1, -(-len(keys) // 40))
    ax.set_xticks(range(0, len(keys), step), keys[::step], rotation=90 if len(keys) > 12 else 30,
                  ha="center" if len(keys) > 12 else "right", fontsize=8)
    ax.set_title(title)
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
