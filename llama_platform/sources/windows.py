"""Update-time windows of raw issues, and the incremental-fetch plan for one repo.

raw_issues is partitioned by repo x calendar month of `updated_at`. Monthly because a real fleet
(500 repos x 10 years = 60,000 partitions) stays inside Dagster's recommended 100,000 partitions
per asset, where weekly windows (260,000) would not; a month is also small enough that refreshing
"the current window" is cheap once incremental (`since`) fetching is used.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Iterable

import pandas as pd

WINDOW_FORMAT = "%Y-%m-%d"  # Dagster's MonthlyPartitionsDefinition keys: the month's first day


def window_of(ts: datetime | pd.Timestamp) -> str:
    ts = pd.Timestamp(ts).tz_convert("UTC") if pd.Timestamp(ts).tzinfo else pd.Timestamp(ts, tz="UTC")
    return ts.strftime("%Y-%m-01")


def window_bounds(window: str) -> tuple[datetime, datetime]:
    """[start, end) of a monthly window key like '2025-03-01', as aware UTC datetimes."""
    start = datetime.strptime(window, WINDOW_FORMAT).replace(tzinfo=timezone.utc)
    end = (pd.Timestamp(start) + pd.offsets.MonthBegin(1)).to_pydatetime()
    return start, end


@dataclass
class IngestState:
    """What is already stored for one repo: every record updated in [covered_from, high_water]."""

    covered_from: str | None = None  # ISO timestamps (UTC)
    high_water: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | None) -> "IngestState":
        return cls(**json.loads(text)) if text else cls()


@dataclass(frozen=True)
class FetchPlan:
    since: datetime  # ask the forge for records updated at or after this
    until: datetime  # records updated at or after this are outside the requested windows
    incremental: bool  # True when only changes since the last refresh are fetched


def plan_fetch(windows: Iterable[str], state: IngestState) -> FetchPlan:
    """One paginated pass per repo: from the first requested window's start, or, when everything
    from there up to the last refresh is already stored, only from the last refresh on (so a
    refresh costs requests in proportion to what changed, not to the window's size)."""
    bounds = [window_bounds(w) for w in windows]
    start = min(b[0] for b in bounds)
    end = max(b[1] for b in bounds)
    if state.covered_from and state.high_water:
        covered_from = datetime.fromisoformat(state.covered_from)
        high_water = datetime.fromisoformat(state.high_water)
        if covered_from <= start <= high_water < end:
            return FetchPlan(since=high_water, until=end, incremental=True)
    return FetchPlan(since=start, until=end, incremental=False)


def advance_state(state: IngestState, plan: FetchPlan, fetch_started: datetime) -> IngestState:
    """After a successful pass begun at `fetch_started`, every update in [since, min(until,
    fetch_started)] is stored; join that with the stored range when they touch."""
    since, reached = plan.since, min(plan.until, fetch_started)
    if state.covered_from and state.high_water:
        old_from, old_high = datetime.fromisoformat(state.covered_from), datetime.fromisoformat(state.high_water)
        if since <= old_high and reached >= old_from:
            since, reached = min(since, old_from), max(reached, old_high)
    return IngestState(covered_from=since.isoformat(), high_water=reached.isoformat())


RAW_KEY = ["source", "repo", "number", "updated_at"]


def keyless(df: pd.DataFrame) -> pd.Series:
    """Rows the forge sent without a number or a usable updated_at: they have no version key."""
    return df["number"].isna() | df["number"].astype(str).eq("") | df["updated_at"].isna()


def merge_versions(existing: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """Union of stored and newly fetched rows, one row per (source, repo, number, updated_at):
    re-running a partition is idempotent and an overlap between passes adds no duplicate. Keyless
    rows are told apart by their payload hash instead, so they never collapse onto one key (the
    cleaning quarantines each with its reason)."""
    frames = [f for f in (existing, new) if f is not None and len(f)]
    if not frames:
        return new.iloc[0:0]
    merged = pd.concat(frames, ignore_index=True)
    content = merged["payload_sha256"] if "payload_sha256" in merged else merged["payload"]
    merged["_identity"] = content.where(keyless(merged), "")
    merged = merged.drop_duplicates(subset=RAW_KEY + ["_identity"], keep="last")
    merged = merged.sort_values(RAW_KEY + ["_identity"], kind="stable").drop(columns="_identity")
    return merged.reset_index(drop=True)


def assign_windows(fetched: pd.DataFrame, windows: list[str]) -> pd.Series:
    """Each fetched row's window: the month of its updated_at. A row without one (malformed) cannot
    be placed by time; it goes to the newest window of the run, so it is stored and quarantined
    downstream rather than lost."""
    if not len(fetched):
        return pd.Series(dtype=str)
    placed = fetched["updated_at"].map(lambda ts: None if pd.isna(ts) else window_of(ts))
    return placed.fillna(max(windows))
