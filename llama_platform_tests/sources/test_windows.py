from datetime import datetime, timezone

import pandas as pd

from llama_platform.sources.windows import (
    assign_windows,
    IngestState,
    advance_state,
    merge_versions,
    plan_fetch,
    window_bounds,
    window_of,
)


def utc(*a):
    return datetime(*a, tzinfo=timezone.utc)


def test_window_of_and_bounds():
    assert window_of(pd.Timestamp("2025-03-31T23:59:59Z")) == "2025-03-01"
    assert window_of(pd.Timestamp("2025-04-01T00:00:00+08:00")) == "2025-03-01"  # UTC month
    assert window_bounds("2025-12-01") == (utc(2025, 12, 1), utc(2026, 1, 1))


def test_first_fetch_starts_at_the_first_requested_window():
    plan = plan_fetch(["2025-03-01", "2025-01-01"], IngestState())
    assert (plan.since, plan.until, plan.incremental) == (utc(2025, 1, 1), utc(2025, 4, 1), False)


def test_refresh_of_current_window_asks_only_for_changes_since_last_refresh():
    state = IngestState(covered_from=utc(2024, 1, 1).isoformat(), high_water=utc(2025, 3, 10, 12).isoformat())
    plan = plan_fetch(["2025-03-01"], state)
    assert plan.incremental and plan.since == utc(2025, 3, 10, 12)
    new_state = advance_state(state, plan, fetch_started=utc(2025, 3, 11))
    assert new_state == IngestState(utc(2024, 1, 1).isoformat(), utc(2025, 3, 11).isoformat())


def test_backfill_before_the_stored_range_fetches_from_its_start_and_joins_ranges():
    state = IngestState(covered_from=utc(2025, 1, 1).isoformat(), high_water=utc(2025, 3, 10).isoformat())
    plan = plan_fetch(["2024-11-01", "2024-12-01"], state)
    assert not plan.incremental and plan.since == utc(2024, 11, 1) and plan.until == utc(2025, 1, 1)
    assert advance_state(state, plan, utc(2025, 3, 11)) == IngestState(
        utc(2024, 11, 1).isoformat(), utc(2025, 3, 10).isoformat()
    )


def test_a_gap_replaces_the_stored_range():
    state = IngestState(covered_from=utc(2025, 1, 1).isoformat(), high_water=utc(2025, 2, 1).isoformat())
    plan = plan_fetch(["2025-06-01"], state)
    assert not plan.incremental
    assert advance_state(state, plan, utc(2025, 8, 1)) == IngestState(
        utc(2025, 6, 1).isoformat(), utc(2025, 7, 1).isoformat()
    )


def test_merge_versions_is_idempotent_and_keeps_every_version():
    def frame(rows):
        return pd.DataFrame(rows, columns=["source", "repo", "number", "updated_at", "payload"])

    a = frame([["github", "o/r", "1", pd.Timestamp("2025-01-01", tz="UTC"), "v1"]])
    b = frame([["github", "o/r", "1", pd.Timestamp("2025-01-01", tz="UTC"), "v1"],
               ["github", "o/r", "1", pd.Timestamp("2025-01-05", tz="UTC"), "v2"]])
    merged = merge_versions(a, b)
    assert merged["payload"].tolist() == ["v1", "v2"]
    assert merge_versions(merged, b).equals(merged)


def test_keyless_rows_never_collapse_and_still_get_a_window():
    """Rows without a number or updated_at (malformed forge items) keep one row each, and are stored
    in the run's newest window instead of none."""
    cols = ["source", "repo", "number", "updated_at", "payload", "payload_sha256"]
    ts = pd.Timestamp("2025-03-07T12:00:00Z")
    rows = pd.DataFrame([["github", "o/r", "", ts, '{"a"}', "sha-a"],
                         ["github", "o/r", "", ts, '{"b"}', "sha-b"],
                         ["github", "o/r", "9", pd.NaT, '{"c"}', "sha-c"],
                         ["github", "o/r", "1", ts, '{"d"}', "sha-d"]], columns=cols)
    merged = merge_versions(None, rows)
    assert sorted(merged["payload_sha256"]) == ["sha-a", "sha-b", "sha-c", "sha-d"]
    assert merge_versions(merged, rows).equals(merged)  # still idempotent
    assert assign_windows(rows, ["2025-02-01", "2025-03-01"]).tolist() == ["2025-03-01"] * 4
    assert assign_windows(rows, ["2025-03-01", "2025-04-01"]).tolist()[2] == "2025-04-01"
