"""The metadata helpers make the UI readable: short previews, rounded floats, real dtypes with
descriptions, plots whose axis labels stay legible at any number of bars, stable code versions."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from PIL import Image

from llama_platform.assets.common import (
    PREVIEW_CELL_CHARS,
    bar_plot,
    code_version_of,
    column_schema,
    preview,
    rounded,
)


def test_preview_trims_long_cells_rounds_floats_and_shows_several_rows():
    df = pd.DataFrame({
        "title": ["x" * 500] * 12,
        "score": [1 / 3] * 12,
        "labels": [np.array(["bug", "docs"])] * 12,
        "body": ["line one\nline | two"] * 12,
    })
    md = preview(df).value
    rows = [r for r in md.splitlines()[2:]]
    assert 5 <= len(rows) <= 10
    first = rows[0]
    assert "x" * PREVIEW_CELL_CHARS not in first and "…" in first
    assert "0.3333" in first and "0.33333" not in first
    assert "bug, docs" in first and "line one line \\| two" in first
    assert rounded(2 / 3).value == 0.6667


def test_column_schema_has_real_dtypes_and_descriptions():
    df = pd.DataFrame({"label": ["bug"], "labels": [np.array(["bug"])], "n_comments": [3],
                       "created_at": pd.to_datetime(["2025-01-01"], utc=True)})
    cols = {c.name: c for c in column_schema(df).value.columns}
    assert cols["label"].type == "string" and cols["labels"].type == "list"
    assert cols["n_comments"].type == "int64" and cols["created_at"].type.startswith("datetime64")
    assert "primary label" in cols["label"].description


def test_bar_plot_widens_with_many_bars():
    few = Image.open(io.BytesIO(bar_plot({"a": 1, "b": 2}, "t")))
    many = Image.open(io.BytesIO(bar_plot({f"2024-{i:03d}": i for i in range(120)}, "t")))
    assert many.width > 1.5 * few.width  # room for the labels instead of overlapping them


def test_code_version_changes_only_with_the_code(tmp_path):
    assert code_version_of("assets/raw.py", "sources") == code_version_of("sources", "assets/raw.py")
    assert code_version_of("assets/raw.py") != code_version_of("assets/cleaning.py")
