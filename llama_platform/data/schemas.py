"""pandera contracts for the data frames that flow between the data assets."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
import pandera.pandas as pa
from pandera.typing.pandas import Series

from llama_platform.data.labels import LABELS
from llama_platform.data.lang import LANG_CODES
from llama_platform.sources.records import SOURCES

UtcTimestamp = Annotated[pd.DatetimeTZDtype, "ns", "UTC"]

QUARANTINE_REASON_PATTERN = r"^(malformed:[a-z_]+|too_large|invalid_utf8)$"
FILTER_REASONS = (
    "superseded", "pull_request", "bot_author", "no_label", "too_short", "bot_dominated", "comment_flood",
    "near_duplicate",
)  # fmt: skip
SPLITS = ("train", "val", "test")
_SHA256 = r"^[0-9a-f]{64}$"


class RawIssuesSchema(pa.DataFrameModel):
    """What a forge connector stores: lossless payloads, keyed by (source, repo, number, updated_at)."""

    source: Series[str]
    repo: Series[str]
    number: Series[str]
    # Null when the forge sent an unparseable timestamp; cleaning quarantines such rows.
    updated_at: Series[UtcTimestamp] = pa.Field(nullable=True)
    payload: Series[str]
    payload_sha256: Series[str] = pa.Field(str_matches=_SHA256)

    class Config:
        strict = True


class CleanedIssuesSchema(pa.DataFrameModel):
    """One training-ready issue per row: latest version, human text only, redacted, deduplicated."""

    issue_id: Series[str] = pa.Field(unique=True)
    source: Series[str] = pa.Field(isin=list(SOURCES))
    repo: Series[str] = pa.Field(str_length={"min_value": 1})
    number: Series[str] = pa.Field(str_length={"min_value": 1})
    title: Series[str]
    body: Series[str]
    comments_text: Series[str]
    n_comments: Series[int] = pa.Field(ge=0)
    labels: Series[object]
    label: Series[str] = pa.Field(isin=list(LABELS))
    lang: Series[str] = pa.Field(isin=list(LANG_CODES))
    state: Series[str] = pa.Field(isin=["open", "closed"])
    author: Series[str] = pa.Field(nullable=True, str_matches=r"^<USER_[0-9a-f]{6}>$")
    author_association: Series[str] = pa.Field(nullable=True)
    created_at: Series[UtcTimestamp]
    updated_at: Series[UtcTimestamp]
    closed_at: Series[UtcTimestamp] = pa.Field(nullable=True)
    dup_cluster: Series[str]
    redactions: Series[int] = pa.Field(ge=0)
    raw_hash: Series[str]

    @pa.check("labels", name="labels_are_canonical_and_non_empty")
    def _labels_ok(cls, labels: Series[object]) -> Series[bool]:
        return labels.map(lambda v: len(v) > 0 and all(x in LABELS for x in v) if hasattr(v, "__len__") else False)

    @pa.dataframe_check(name="label_is_first_of_labels")
    def _primary_label(cls, df: pd.DataFrame) -> Series[bool]:
        return pd.Series([len(ls) > 0 and ls[0] == lab for ls, lab in zip(df["labels"], df["label"])], index=df.index)

    @pa.dataframe_check(name="issue_id_matches_key")
    def _issue_id(cls, df: pd.DataFrame) -> Series[bool]:
        return df["issue_id"] == df["source"] + ":" + df["repo"] + "#" + df["number"]

    class Config:
        strict = True


class QuarantinedIssuesSchema(pa.DataFrameModel):
    """Raw rows that could not be used, each with a machine-readable reason and a human detail."""

    issue_id: Series[str]
    source: Series[str] = pa.Field(nullable=True)
    repo: Series[str] = pa.Field(nullable=True)
    number: Series[str] = pa.Field(nullable=True)
    reason: Series[str] = pa.Field(str_matches=QUARANTINE_REASON_PATTERN)
    detail: Series[str]
    payload_sha256: Series[str] = pa.Field(nullable=True)

    class Config:
        strict = True


class FilteredIssuesSchema(pa.DataFrameModel):
    """Valid raw rows that are deliberately not training examples, with the reason why."""

    issue_id: Series[str]
    source: Series[str]
    repo: Series[str]
    number: Series[str]
    reason: Series[str] = pa.Field(isin=list(FILTER_REASONS))

    class Config:
        strict = True


class SnapshotSchema(CleanedIssuesSchema):
    """A dataset version: the cleaned issues plus their train/val/test split."""

    split: Series[str] = pa.Field(isin=list(SPLITS))
