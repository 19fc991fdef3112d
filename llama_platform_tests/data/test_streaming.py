"""The streaming (spill-to-disk) cleaning path equals the in-memory oracle, and streamed snapshots the in-memory ones."""

from datetime import datetime, timezone

import pandas as pd
import pytest
from deltalake import DeltaTable, write_deltalake

from llama_platform.data.snapshot import (
    STREAMING_FORMAT_VERSION,
    SnapshotIntegrityError,
    read_snapshot,
    row_content_hash,
    write_snapshot,
    write_snapshot_streaming,
)
from llama_platform.data.splits import assign_splits
from llama_platform.data.store import open_store
from llama_platform.data.cleaning import CLEANED_COLUMNS
from llama_platform.data.streaming import stream_clean
from llama_platform_tests.data.factories import frame, gh_comment, gh_row
from llama_platform_tests.data.oracle import oracle_clean
from llama_platform_tests.data.test_cleaning import mixed  # noqa: F401  (a fixture)

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
LINEAGE = {"raw_partitions": ["test"], "code_version": "test"}


def _chunks(df: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    shuffled = df.sample(frac=1.0, random_state=5).reset_index(drop=True)
    return [shuffled.iloc[i : i + size] for i in range(0, len(shuffled), size)]


def _expected(raw: pd.DataFrame):
    res = oracle_clean(raw)
    return res, res.cleaned.assign(split=assign_splits(res.cleaned["dup_cluster"]))


def _bigger() -> pd.DataFrame:
    rows = []
    for n in range(40):
        body = f"Case {n % 13}: the importer fails on large archives " * (3 + n % 13)
        rows.append(gh_row(number=n, title=f"Importer crash {n % 13}", body=body, labels=("bug",) if n % 3 else ("question",),
                           created=f"2024-01-{1 + n % 28:02d}T10:00:00Z", repo=f"org/r{n % 4}",
                           comments=[gh_comment(f"user{n % 5}", f"Same for me @user{(n + 1) % 5} on build {n}")]))
        if n % 7 == 0:  # a newer version of the same issue
            rows.append(gh_row(number=n, title=f"Importer crash {n}", body=body + " Update.", labels=("bug",),
                               updated="2024-03-01T10:00:00Z", repo=f"org/r{n % 4}"))
    return frame(rows)  # fmt: skip


@pytest.mark.parametrize("workers", [1, 2])
def test_stream_clean_matches_the_oracle(mixed, tmp_path, workers):  # noqa: F811
    expected, expected_snapshot = _expected(mixed)
    res = stream_clean(_chunks(mixed, 3), tmp_path / "spill", workers=workers, part_rows=2)
    pd.testing.assert_frame_equal(res.cleaned_frame(), expected_snapshot)
    key = ["issue_id", "reason"]
    assert sorted(map(tuple, res.filtered[key].values)) == sorted(map(tuple, expected.filtered[key].values))
    assert sorted(map(tuple, res.quarantined[key].values)) == sorted(map(tuple, expected.quarantined[key].values))
    assert res.counts == expected.counts
    c = res.counts
    assert c["raw"] == len(mixed) == c["cleaned"] + sum(c["quarantined"].values()) + sum(c["filtered"].values())
    assert "near_duplicate" in c["filtered"] and "superseded" in c["filtered"]  # decisions across chunks


def test_stream_clean_with_many_clusters_and_versions(tmp_path):
    raw = _bigger()
    expected, expected_snapshot = _expected(raw)
    res = stream_clean(_chunks(raw, 7), tmp_path / "spill", part_rows=5)
    got = res.cleaned_frame()
    assert list(got["issue_id"]) == list(expected_snapshot["issue_id"])
    assert list(got["label"]) == list(expected_snapshot["label"])
    assert list(got["split"]) == list(expected_snapshot["split"])
    pd.testing.assert_frame_equal(got, expected_snapshot)
    assert res.counts == expected.counts
    assert len(res.cleaned_parts) > 1
    assert res.counts["filtered"]["near_duplicate"] > 5


def test_empty_stream(tmp_path):
    res = stream_clean([], tmp_path / "spill")
    assert res.counts["raw"] == 0 and res.counts["cleaned"] == 0
    # One empty part still carries the cleaned table's schema (the IO manager stores it as a table).
    assert len(res.cleaned_parts) == 1
    (part,) = res.iter_cleaned()
    assert part.empty and set(CLEANED_COLUMNS) <= set(part.columns)


def test_streamed_snapshot_round_trips_and_is_batch_independent(mixed, tmp_path):  # noqa: F811
    _, expected_snapshot = _expected(_bigger())
    store = open_store(f"file://{tmp_path}/store")
    res = stream_clean(_chunks(_bigger(), 9), tmp_path / "spill", part_rows=4)
    info = write_snapshot_streaming(store, res.iter_cleaned, LINEAGE, created_at=T0)
    assert info.created and info.manifest["format_version"] == STREAMING_FORMAT_VERSION
    assert info.content_hash == row_content_hash(expected_snapshot)
    assert info.manifest["total_rows"] == len(expected_snapshot)
    assert info.row_counts == {s: int((expected_snapshot["split"] == s).sum()) for s in ("train", "val", "test")}
    back, manifest = read_snapshot(store, info.version)  # verifies the row-hash content hash
    pd.testing.assert_frame_equal(back, expected_snapshot)
    # The same rows in other batches: the same version, and writing again is a no-op.
    again = write_snapshot_streaming(store, lambda: [expected_snapshot.iloc[::-1]], LINEAGE)
    assert again.version == info.version and not again.created
    # A format-2 snapshot of the same rows is a different, independent version.
    assert write_snapshot(store, expected_snapshot, LINEAGE).version != info.version


def test_streamed_snapshot_tampering_and_bad_batches(tmp_path):
    _, df = _expected(_bigger())
    store = open_store(f"file://{tmp_path}/store")
    with pytest.raises(ValueError, match="unique"):
        write_snapshot_streaming(store, lambda: [df, df.iloc[:1]], LINEAGE)
    info = write_snapshot_streaming(store, lambda: [df], LINEAGE)
    # Rows appended to the table behind the manifest's back (a valid Delta commit).
    extra = DeltaTable(info.uri).to_pyarrow_table().slice(0, 1)
    write_deltalake(info.uri, extra, mode="append")
    with pytest.raises(SnapshotIntegrityError, match="content hash"):
        read_snapshot(store, info.version)


def test_keyless_rows_are_each_quarantined_in_both_paths(tmp_path):
    """Rows without a number or updated_at (malformed forge items) do not collapse onto one version key:
    each is quarantined with its reason, never `superseded`, and raw = cleaned + quarantined + filtered."""
    nonumber = [gh_row(number=None, title=f"Numberless item {k}", body=f"Body {k}. " * 10) for k in range(3)]
    noupdate = gh_row(number=5, updated=None)
    good = [gh_row(number=5), gh_row(number=6, body="Another report about the cache directory. " * 3)]
    raw = frame([*nonumber, noupdate, *good])
    assert list(raw["number"][:3]) == ["", "", ""] and raw["updated_at"].isna().sum() == 1
    expected = oracle_clean(raw)
    res = stream_clean(_chunks(raw, 2), tmp_path / "spill")
    for r in (expected, res):
        assert sorted(r.quarantined["reason"]) == ["malformed:bad_timestamp"] + ["malformed:missing_field"] * 3
        assert "superseded" not in set(r.filtered["reason"])
        c = r.counts
        assert c["raw"] == len(raw) == c["cleaned"] + sum(c["quarantined"].values()) + sum(c["filtered"].values())
    assert res.counts == expected.counts
