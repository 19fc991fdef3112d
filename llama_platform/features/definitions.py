"""The Feast objects: entities and feature views over the parquet tables from `sources.py`.

Built by functions because the FileSource paths (and repo_stats' label columns) are only known at
run time; `write_feature_store` applies what `feature_objects(...)` returns.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Sequence

from feast import Entity, FeatureView, Field, FileSource
from feast.types import Bool, Float32, Int64
from feast.value_type import ValueType

from llama_platform.features.sources import EVENT_TS

# Issue features never expire; repo/author rows are written only on days their values change,
# so a long TTL lets the as-of join reach back to the last change.
TTL = timedelta(days=3650)
VIEW_NAMES = ("issue_stats", "repo_stats", "author_stats")

issue = Entity(name="issue", join_keys=["issue_id"], value_type=ValueType.STRING, description="One forge issue")
repo = Entity(name="repo", join_keys=["repo"], value_type=ValueType.STRING, description="owner/name on a forge")
author = Entity(name="author", join_keys=["author"], value_type=ValueType.STRING, description="Pseudonymised author")
ENTITIES = (issue, repo, author)


def table_path(data_dir: Path, view_name: str) -> Path:
    return Path(data_dir) / "sources" / f"{view_name}.parquet"


def _source(data_dir: Path, view_name: str) -> FileSource:
    return FileSource(
        name=f"{view_name}_source",
        path=str(table_path(data_dir, view_name).resolve()),
        timestamp_field=EVENT_TS,
    )


def feature_views(data_dir: Path, label_columns: Sequence[str] = ()) -> list[FeatureView]:
    """The three feature views reading their parquet sources under `data_dir/sources/`.

    `label_columns` are repo_stats' label-share columns (see `sources.label_feature_name`).
    """
    issue_stats = FeatureView(
        name="issue_stats",
        entities=[issue],
        ttl=TTL,
        schema=[
            Field(name="title_len", dtype=Int64),
            Field(name="body_len", dtype=Int64),
            Field(name="n_comments", dtype=Int64),
            Field(name="has_code_block", dtype=Bool),
            Field(name="n_urls", dtype=Int64),
            Field(name="has_stack_trace", dtype=Bool),
            Field(name="n_redactions", dtype=Int64),
            Field(name="is_closed", dtype=Bool),
        ],
        source=_source(data_dir, "issue_stats"),
        online=True,
        description="Per-issue text and state features, stamped at created_at",
    )
    repo_stats = FeatureView(
        name="repo_stats",
        entities=[repo],
        ttl=TTL,
        schema=[
            Field(name="repo_issues_before", dtype=Int64),
            Field(name="repo_closed_before", dtype=Int64),
            *[Field(name=c, dtype=Float32) for c in label_columns],
        ],
        source=_source(data_dir, "repo_stats"),
        online=True,
        description="Per repo and day: counts and label shares of issues created before that day",
    )
    author_stats = FeatureView(
        name="author_stats",
        entities=[author],
        ttl=TTL,
        schema=[
            Field(name="author_prior_issues", dtype=Int64),
            Field(name="author_prior_closed", dtype=Int64),
            Field(name="author_first_time", dtype=Bool),
        ],
        source=_source(data_dir, "author_stats"),
        online=True,
        description="Per author and day: issues the author created (and had closed) before that day; first-time reporter",
    )
    return [issue_stats, repo_stats, author_stats]


def feature_objects(data_dir: Path, label_columns: Sequence[str] = ()) -> list:
    """Everything `FeatureStore.apply` needs: entities first, then the views."""
    return [*ENTITIES, *feature_views(data_dir, label_columns)]
