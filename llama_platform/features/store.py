"""Write, apply, materialise and query the Feast feature store (local provider).

Layout under `data_dir`: `sources/*.parquet` (offline, file store), `registry.db`, `online.db`
(sqlite online store). `repo_dir` holds the generated `feature_store.yaml`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import yaml
from feast import FeatureStore

from llama_platform.features.definitions import VIEW_NAMES, feature_objects, table_path
from llama_platform.features.sources import EVENT_TS, LABEL_SHARE_PREFIX

PROJECT = "llama_platform"
ENTITY_KEYS = ("issue_id", "repo", "author")


@dataclass(frozen=True)
class FeatureRepoConfig:
    repo_dir: Path
    data_dir: Path

    @property
    def yaml_path(self) -> Path:
        return Path(self.repo_dir) / "feature_store.yaml"

    def repo_yaml(self) -> dict:
        data_dir = Path(self.data_dir).resolve()
        return {
            "project": PROJECT,
            "provider": "local",
            "registry": str(data_dir / "registry.db"),
            "online_store": {"type": "sqlite", "path": str(data_dir / "online.db")},
            "offline_store": {"type": "file"},
            # Version 3 is the current key format; older ones are deprecated (FIELD-NOTES).
            "entity_key_serialization_version": 3,
        }


def write_feature_store(cfg: FeatureRepoConfig, tables: dict[str, pd.DataFrame]) -> FeatureStore:
    """Write the parquet sources and feature_store.yaml, then `apply` the definitions."""
    missing = [name for name in VIEW_NAMES if name not in tables]
    if missing:
        raise ValueError(f"feature tables missing: {missing} (build them with build_feature_tables)")
    for name in VIEW_NAMES:
        if EVENT_TS not in tables[name].columns:
            raise ValueError(f"feature table {name!r} has no {EVENT_TS!r} column")
        path = table_path(cfg.data_dir, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tables[name].to_parquet(path, index=False)
    Path(cfg.repo_dir).mkdir(parents=True, exist_ok=True)
    cfg.yaml_path.write_text(yaml.safe_dump(cfg.repo_yaml(), sort_keys=False))
    label_columns = [c for c in tables["repo_stats"].columns if c.startswith(LABEL_SHARE_PREFIX)]
    store = open_feature_store(cfg)
    store.apply(feature_objects(cfg.data_dir, label_columns))
    return store


def open_feature_store(cfg: FeatureRepoConfig) -> FeatureStore:
    """The store described by an already written feature_store.yaml."""
    if not cfg.yaml_path.exists():
        raise FileNotFoundError(f"no feature store at {cfg.repo_dir}: run write_feature_store first")
    return FeatureStore(repo_path=str(cfg.repo_dir))


def materialize(store: FeatureStore, start: datetime, end: datetime) -> None:
    """Load the latest value per entity with event time in [start, end] into the online store."""
    store.materialize(start_date=start, end_date=end)


def feature_refs(store: FeatureStore) -> list[str]:
    """Every feature as "view:feature", in view order."""
    views = {fv.name: fv for fv in store.list_feature_views()}
    return [f"{name}:{f.name}" for name in VIEW_NAMES if name in views for f in views[name].features]


def historical_features(
    store: FeatureStore, entity_df: pd.DataFrame, features: Sequence[str] | None = None
) -> pd.DataFrame:
    """Point-in-time join: for each entity row, feature values as of its `event_timestamp`.

    `entity_df` needs `event_timestamp` and the join keys of the views asked for (all three by
    default: issue_id, repo, author). Returns one row per entity row.
    """
    refs = list(features) if features is not None else feature_refs(store)
    views = {r.split(":", 1)[0] for r in refs}
    needed = [EVENT_TS] + [k for k, v in zip(ENTITY_KEYS, VIEW_NAMES) if v in views]
    missing = [c for c in needed if c not in entity_df.columns]
    if missing:
        raise ValueError(f"entity_df is missing columns {missing}")
    clashing = sorted(set(entity_df.columns) & {r.split(":", 1)[1] for r in refs})
    if clashing:
        raise ValueError(f"entity_df columns {clashing} clash with feature names: drop or rename them")
    entity_df = entity_df.copy()
    entity_df[EVENT_TS] = pd.to_datetime(entity_df[EVENT_TS], utc=True)
    if "author" in entity_df.columns:
        entity_df["author"] = entity_df["author"].fillna("")  # as in online_features: no null keys
    # Feast's file store drops entity rows that repeat (keys, time) and rows whose key only has
    # rows later than their time (measured on 0.67). So ask for the distinct rows and left-join the
    # answer back: every entity row comes out once, in the caller's order, nulls where none matched.
    on = [c for c in (*ENTITY_KEYS, EVENT_TS) if c in needed]
    distinct = entity_df[on].drop_duplicates()
    found = store.get_historical_features(entity_df=distinct, features=refs).to_df()
    found[EVENT_TS] = pd.to_datetime(found[EVENT_TS], utc=True).astype(entity_df[EVENT_TS].dtype)
    return entity_df.merge(found, on=on, how="left", validate="many_to_one")


def online_features(
    store: FeatureStore,
    issue_ids: Sequence[str],
    repos: Sequence[str],
    authors: Sequence[str | None],
    features: Sequence[str] | None = None,
) -> dict[str, list[Any]]:
    """Latest materialised values for parallel lists of (issue_id, repo, author).

    Returns {column: [value per row]} with the entity keys and one column per feature; an entity
    the store has not seen (e.g. a new issue) gets None values.
    """
    if not (len(issue_ids) == len(repos) == len(authors)):
        raise ValueError("issue_ids, repos and authors must have the same length (one row per request)")
    rows = [
        # Feast cannot serialise a null key; an unknown author ("") simply matches nothing.
        {"issue_id": i, "repo": r, "author": a if a is not None else ""}
        for i, r, a in zip(issue_ids, repos, authors)
    ]
    refs = list(features) if features is not None else feature_refs(store)
    return store.get_online_features(features=refs, entity_rows=rows).to_dict()
