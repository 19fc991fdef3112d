"""Feature tables for the Feast feature views, computed from an issue snapshot with plain pandas.

One table per feature view, each with an `event_timestamp` column:

- `issue_stats`  one row per issue at its `created_at`: text lengths, code blocks, redactions, and
                 the issue's state as of the snapshot (`n_comments`, `is_closed`; these describe the
                 snapshot, not the moment of creation, so use them for analysis, not as model inputs).
- `repo_stats`   per repo and day D (00:00 UTC): issues created before D, issues closed before D, and
                 the share of each label among the issues created before D.
- `author_stats` per author and day D: issues the author created before D, of those how many were
                 closed before D, and whether the author is a first-time reporter.

Point-in-time rule: a repo/author row stamped D only uses issues created (or closed) strictly
before D, so Feast's as-of join at any time t >= D never sees an issue from t's own day or later.
Rows are written only on the days a value changes (each creation day and the day after it), which
the as-of join turns into the same answer as one row per calendar day.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np
import pandas as pd

EVENT_TS = "event_timestamp"
REQUIRED_COLUMNS = (
    "issue_id", "repo", "title", "body", "n_comments", "label", "state", "author",
    "created_at", "closed_at", "redactions",
)
LABEL_SHARE_PREFIX = "repo_label_share__"
# A fenced block or an indented 4-space block: the two ways Markdown marks code.
_CODE_BLOCK = re.compile(r"```|~~~|(?:^|\n)(?: {4}|\t)\S")
_NOT_NAME = re.compile(r"[^0-9a-z]+")
_URL = re.compile(r"https?://\S+")
# Python/Java/JS/Go/Rust traces: the lines a stack trace starts with or is made of.
_STACK_TRACE = re.compile(r"Traceback \(most recent call last\)|^\s+at [\w$.<>]+\(|^goroutine \d+ \[|panicked at|^Exception in thread", re.M)


class FeatureInputError(ValueError):
    """The snapshot cannot be turned into feature tables (missing columns, bad keys or times)."""


def label_feature_name(label: str) -> str:
    """The repo_stats column holding `label`'s share, e.g. "good first issue" -> repo_label_share__good_first_issue."""
    slug = _NOT_NAME.sub("_", label.lower()).strip("_")
    if not slug:
        # Labels in other scripts (Gitee's Chinese labels) have no ASCII slug; keep them distinct.
        slug = "u" + "_".join(f"{ord(c):x}" for c in label.strip())
    return LABEL_SHARE_PREFIX + slug


def build_feature_tables(
    snapshot_df: pd.DataFrame, labels: Sequence[str] | None = None
) -> dict[str, pd.DataFrame]:
    """{"issue_stats", "repo_stats", "author_stats"} tables for `snapshot_df`.

    `labels` fixes which label shares repo_stats carries (default: every `label` value in the
    snapshot, sorted); issues whose label is outside that set still count in the totals.
    """
    df = _validated(snapshot_df)
    if labels is None:
        labels = sorted(df["label"].dropna().astype(str).unique())
    labels = list(dict.fromkeys(labels))
    names = [label_feature_name(l) for l in labels]
    if len(set(names)) != len(names):
        raise FeatureInputError(f"labels {labels} map to clashing feature names {names}")
    return {
        "issue_stats": _issue_stats(df),
        "repo_stats": _repo_stats(df, labels, names),
        "author_stats": _author_stats(df),
    }


def _validated(snapshot_df: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in REQUIRED_COLUMNS if c not in snapshot_df.columns]
    if missing:
        raise FeatureInputError(f"snapshot is missing columns {missing}")
    if snapshot_df.empty:
        raise FeatureInputError("snapshot has no rows: nothing to build features from")
    df = snapshot_df.copy()
    if df["issue_id"].isna().any() or (df["issue_id"].astype(str) == "").any():
        raise FeatureInputError("snapshot has rows without an issue_id")
    dupes = df.loc[df["issue_id"].duplicated(), "issue_id"].tolist()
    if dupes:
        raise FeatureInputError(f"snapshot has duplicate issue_ids, e.g. {dupes[:3]}")
    if df["repo"].isna().any():
        raise FeatureInputError("snapshot has rows without a repo: " + str(df.loc[df["repo"].isna(), "issue_id"].tolist()[:3]))
    for col in ("created_at", "closed_at"):
        try:
            df[col] = pd.to_datetime(df[col], utc=True)
        except (ValueError, TypeError) as exc:
            raise FeatureInputError(f"{col} is not a timestamp column: {exc}") from exc
    if df["created_at"].isna().any():
        bad = df.loc[df["created_at"].isna(), "issue_id"].tolist()
        raise FeatureInputError(f"issues without created_at, e.g. {bad[:3]}")
    # Feast's file store keeps microseconds; matching it avoids off-by-nanosecond as-of joins.
    df["created_at"] = df["created_at"].dt.floor("us")
    df["closed_at"] = df["closed_at"].dt.floor("us")
    return df


def _n_redactions(redactions: pd.Series) -> pd.Series:
    """The cleaned data's per-issue count of redacted secrets/PII (a non-negative integer)."""
    counts = pd.to_numeric(redactions, errors="coerce")
    if counts.isna().any() or (counts < 0).any() or (counts % 1 != 0).any():
        raise FeatureInputError("redactions must be non-negative integer counts")
    return counts.astype("int64")


def _issue_stats(df: pd.DataFrame) -> pd.DataFrame:
    body = df["body"].fillna("").astype(str)
    return pd.DataFrame(
        {
            "issue_id": df["issue_id"].astype(str),
            EVENT_TS: df["created_at"],
            "title_len": df["title"].fillna("").astype(str).str.len().astype("int64"),
            "body_len": body.str.len().astype("int64"),
            "n_comments": pd.to_numeric(df["n_comments"]).fillna(0).astype("int64"),
            "has_code_block": body.str.contains(_CODE_BLOCK).astype(bool),
            "n_urls": body.str.count(_URL).astype("int64"),
            "has_stack_trace": body.str.contains(_STACK_TRACE).astype(bool),
            "n_redactions": _n_redactions(df["redactions"]),
            "is_closed": (df["state"] == "closed").astype(bool),
        }
    ).reset_index(drop=True)


def _change_days(created: pd.Series) -> pd.DatetimeIndex:
    """Each creation day and the day after it: the only days a count of prior issues changes."""
    day = created.dt.floor("D")
    return pd.DatetimeIndex(pd.concat([day, day + pd.Timedelta(days=1)]).unique()).sort_values()


def _counts_before(times: pd.Series, days: pd.DatetimeIndex) -> np.ndarray:
    """For each day D, how many of `times` are strictly before D (NaT never counts)."""
    sorted_times = np.sort(times.dropna().to_numpy(dtype="datetime64[ns]"))
    return np.searchsorted(sorted_times, days.to_numpy(dtype="datetime64[ns]"), side="left")


def _repo_stats(df: pd.DataFrame, labels: list[str], names: list[str]) -> pd.DataFrame:
    frames = []
    for repo, group in df.groupby("repo", sort=True):
        group = group.sort_values("created_at")
        days = _change_days(group["created_at"])
        created = group["created_at"].to_numpy(dtype="datetime64[ns]")
        n_before = np.searchsorted(created, days.to_numpy(dtype="datetime64[ns]"), side="left")
        out = pd.DataFrame({"repo": repo, EVENT_TS: days})
        out["repo_issues_before"] = n_before.astype("int64")
        out["repo_closed_before"] = _counts_before(group["closed_at"], days).astype("int64")
        label_col = group["label"].astype("string")
        # Cumulative label counts with a leading zero row, indexed by "issues created before D".
        denom = np.maximum(n_before, 1)
        for label, name in zip(labels, names):
            cum = np.concatenate([[0], np.cumsum((label_col == label).fillna(False).to_numpy())])
            out[name] = (cum[n_before] / denom).astype("float32")
        frames.append(out)
    return pd.concat(frames, ignore_index=True)


def _author_stats(df: pd.DataFrame) -> pd.DataFrame:
    # Issues without an author (deleted accounts) have no author entity; they still get issue/repo rows.
    known = df[df["author"].notna() & (df["author"].astype(str) != "")]
    frames = []
    for author, group in known.groupby("author", sort=True):
        # The author's closed count also changes on closing days.
        days = _change_days(pd.concat([group["created_at"], group["closed_at"].dropna()]))
        prior = _counts_before(group["created_at"], days).astype("int64")
        frames.append(
            pd.DataFrame(
                {
                    "author": str(author),
                    EVENT_TS: days,
                    "author_prior_issues": prior,
                    "author_prior_closed": _counts_before(group["closed_at"], days).astype("int64"),
                    # First-time reporter (within the snapshot's history). The forges' own
                    # author_association is left out: it is what the forge says at fetch time, not at filing.
                    "author_first_time": prior == 0,
                }
            )
        )
    if not frames:
        return pd.DataFrame(
            {"author": pd.Series(dtype=str), EVENT_TS: pd.Series(dtype="datetime64[ns, UTC]"),
             "author_prior_issues": pd.Series(dtype="int64"), "author_prior_closed": pd.Series(dtype="int64"),
             "author_first_time": pd.Series(dtype=bool)}
        )
    return pd.concat(frames, ignore_index=True)
