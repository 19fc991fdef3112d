import json
import posixpath
from datetime import datetime, timedelta, timezone

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake
from pandera.errors import SchemaError

from llama_platform.data.cleaning import clean_issues
from llama_platform.data.redaction import pseudonymise
from llama_platform.data.snapshot import (
    MANIFEST_COMMIT_KEY,
    SNAPSHOT_COLUMNS,
    SnapshotIntegrityError,
    content_hash,
    list_snapshots,
    read_snapshot,
    write_snapshot,
)
from llama_platform.data.splits import assign_splits
from llama_platform.data.store import open_store
from llama_platform_tests.data.factories import frame, gh_row

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
LINEAGE = {"raw_partitions": ["acme/server|2024-01-02"], "code_version": "test"}


def _snapshot_frame(n: int = 12, offset: int = 0) -> pd.DataFrame:
    rows = [
        gh_row(number=i, title=f"Issue {i} crashes the importer", body=f"Case {i}: " + "the importer fails " * (i + 3),
               labels=("bug",) if i % 2 else ("question", "documentation"))
        for i in range(offset, offset + n)
    ]  # fmt: skip
    cleaned = clean_issues(frame(rows)).cleaned
    return cleaned.assign(split=assign_splits(cleaned["dup_cluster"]))


@pytest.fixture()
def store(tmp_path):
    return open_store(f"file://{tmp_path}/store")


def test_round_trip(store):
    df = _snapshot_frame()
    info = write_snapshot(store, df, LINEAGE, created_at=T0)
    assert info.created and len(info.version) == 16 and info.content_hash.startswith(info.version)
    back, manifest = read_snapshot(store)
    expected = df[SNAPSHOT_COLUMNS].sort_values("issue_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(back, expected)
    assert isinstance(back["labels"].iloc[0], list)
    assert manifest["lineage"] == LINEAGE
    assert manifest["row_counts"] == {s: int((df["split"] == s).sum()) for s in ("train", "val", "test")}
    assert sum(manifest["row_counts"].values()) == manifest["total_rows"] == len(df)
    assert [c["name"] for c in manifest["schema"]] == SNAPSHOT_COLUMNS
    assert manifest["label_counts"]["train"] == dict(df[df["split"] == "train"]["label"].value_counts())
    assert sum(sum(v.values()) for v in manifest["lang_counts"].values()) == len(df)
    assert store.listdir(f"snapshots/{info.version}") == ["manifest.json", "table"]
    # A real Delta table, partitioned by split, whose commit carries the manifest.
    dt = DeltaTable(info.uri)
    assert dt.version() == 0 and dt.metadata().partition_columns == ["split"]
    assert dt.metadata().configuration.get("delta.appendOnly") == "true"
    commit = dt.history()[0]
    assert json.loads(commit[MANIFEST_COMMIT_KEY])["content_hash"] == info.content_hash
    train = dt.to_pyarrow_table(filters=[("split", "=", "train")]).to_pandas()
    assert set(train["split"]) <= {"train"} and len(train) == manifest["row_counts"]["train"]
    by_version, _ = read_snapshot(store, info.content_hash)
    pd.testing.assert_frame_equal(by_version, back)


def test_hash_is_content_addressed(store):
    df = _snapshot_frame()
    shuffled = df.sample(frac=1.0, random_state=7)
    assert content_hash(df) == content_hash(shuffled)
    changed = df.copy()
    changed.loc[changed.index[0], "title"] = "something else"
    assert content_hash(changed) != content_hash(df)
    resplit = df.assign(split=assign_splits(df["dup_cluster"], seed="other"))
    assert content_hash(resplit) != content_hash(df)


def test_rewriting_same_content_is_a_noop(store):
    df = _snapshot_frame()
    first = write_snapshot(store, df, LINEAGE, created_at=T0)
    path = f"snapshots/{first.version}/manifest.json"
    before = store.read_bytes(path)
    again = write_snapshot(store, df.sample(frac=1.0, random_state=1), {"other": "lineage"}, created_at=T0 + timedelta(1))
    assert not again.created and again.version == first.version
    assert store.read_bytes(path) == before  # manifest (and its created_at/lineage) untouched
    assert again.manifest["lineage"] == LINEAGE
    assert len(list_snapshots(store)) == 1


def test_latest_and_listing(store):
    a = write_snapshot(store, _snapshot_frame(6), LINEAGE, created_at=T0)
    b = write_snapshot(store, _snapshot_frame(8, offset=100), LINEAGE, created_at=T0 + timedelta(hours=1))
    assert [m["version"] for m in list_snapshots(store)] == [a.version, b.version]
    assert read_snapshot(store)[1]["version"] == b.version
    assert len(read_snapshot(store, a.version)[0]) == 6
    # Without the LATEST pointer, the newest manifest is found by listing.
    store.fs.delete_file(store.path("snapshots/LATEST"))
    assert read_snapshot(store)[1]["version"] == b.version


def test_missing_snapshots_are_clear_errors(store):
    with pytest.raises(FileNotFoundError, match="no snapshots"):
        read_snapshot(store)
    write_snapshot(store, _snapshot_frame(4), LINEAGE)
    with pytest.raises(FileNotFoundError):
        read_snapshot(store, "0" * 16)


def test_tampered_snapshot_is_detected(store):
    info = write_snapshot(store, _snapshot_frame(), LINEAGE, created_at=T0)
    # Rows appended to the table behind the manifest's back (a valid Delta commit).
    extra = DeltaTable(info.uri).to_pyarrow_table().slice(0, 1)
    write_deltalake(info.uri, extra, mode="append")
    with pytest.raises(SnapshotIntegrityError, match="content hash"):
        read_snapshot(store, info.version)
    assert len(read_snapshot(store, info.version, verify=False)[0]) == info.manifest["total_rows"] + 1


def test_corrupted_data_file_is_detected(store):
    info = write_snapshot(store, _snapshot_frame(), LINEAGE, created_at=T0)
    rel = posixpath.join(f"snapshots/{info.version}/table", DeltaTable(info.uri).file_uris()[0].split("/table/", 1)[1])
    table = pq.read_table(pa.BufferReader(store.read_bytes(rel)))
    sink = pa.BufferOutputStream()
    pq.write_table(table.slice(1), sink)  # one row fewer, written over the original file
    store.write_bytes(rel, sink.getvalue().to_pybytes())
    with pytest.raises(SnapshotIntegrityError):
        read_snapshot(store, info.version)


def test_invalid_frames_are_refused_before_writing(store):
    df = _snapshot_frame(4)
    with pytest.raises(SchemaError):
        write_snapshot(store, df.assign(split="holdout"), LINEAGE)
    with pytest.raises(SchemaError):
        write_snapshot(store, df.drop(columns="split"), LINEAGE)
    with pytest.raises(SchemaError):
        write_snapshot(store, df.assign(author="alice"), LINEAGE)  # not pseudonymised
    with pytest.raises(TypeError):
        write_snapshot(store, df, {"when": datetime.now()})  # lineage must be JSON
    assert list_snapshots(store) == []
    assert pseudonymise("alice") in set(df["author"])


def test_frame_reloaded_from_parquet_gives_the_same_snapshot(store, tmp_path):
    # What an IO manager hands back: labels as numpy arrays, timestamps possibly in microseconds.
    df = _snapshot_frame()
    path = tmp_path / "cleaned.parquet"
    df.to_parquet(path)
    reloaded = pd.read_parquet(path)
    for col in ("created_at", "updated_at", "closed_at"):
        reloaded[col] = reloaded[col].astype("datetime64[us, UTC]")
    assert not isinstance(reloaded["labels"].iloc[0], list)
    assert content_hash(reloaded) == content_hash(df)
    a = write_snapshot(store, df, LINEAGE)
    b = write_snapshot(store, reloaded, LINEAGE)
    assert a.version == b.version and not b.created


def test_interrupted_write_is_completed_by_the_next_writer(store):
    df = _snapshot_frame()
    info = write_snapshot(store, df, LINEAGE, created_at=T0)
    # A writer that committed the table but died before the manifest.
    store.fs.delete_file(store.path(f"snapshots/{info.version}/manifest.json"))
    assert list_snapshots(store) == []
    again = write_snapshot(store, df, LINEAGE, created_at=T0)
    assert again.created and again.version == info.version
    assert DeltaTable(info.uri).version() == 0  # completed, not rewritten
    assert len(read_snapshot(store, info.version)[0]) == len(df)


def test_rebuild_gives_the_same_splits_and_version(store):
    # Splits are a function of the duplicate cluster: cleaning the same raw rows again, in another
    # order, reproduces every split and hence the snapshot version.
    a = _snapshot_frame(20)
    rows = [gh_row(number=i, title=f"Issue {i} crashes the importer", body=f"Case {i}: " + "the importer fails " * (i + 3),
                   labels=("bug",) if i % 2 else ("question", "documentation")) for i in reversed(range(20))]  # fmt: skip
    cleaned = clean_issues(frame(rows)).cleaned
    b = cleaned.assign(split=assign_splits(cleaned["dup_cluster"]))
    assert dict(zip(a["issue_id"], a["split"])) == dict(zip(b["issue_id"], b["split"]))
    assert write_snapshot(store, a, LINEAGE).version == write_snapshot(store, b, LINEAGE).version


def test_round_trip_through_a_real_s3_server(s3_server, s3_bucket):
    store = open_store(f"s3://{s3_bucket}/datasets", s3_server.endpoint_url, s3_server.access_key, s3_server.secret_key)
    assert s3_server.secret_key not in repr(store)
    a = write_snapshot(store, _snapshot_frame(6), LINEAGE, created_at=T0)
    b = write_snapshot(store, _snapshot_frame(8, offset=100), LINEAGE, created_at=T0 + timedelta(hours=1))
    assert a.uri == f"s3://{s3_bucket}/datasets/snapshots/{a.version}/table"
    assert [m["version"] for m in list_snapshots(store)] == [a.version, b.version]
    latest, manifest = read_snapshot(store)
    assert manifest["version"] == b.version and len(latest) == 8
    old, old_manifest = read_snapshot(store, a.version)  # an earlier snapshot stays readable
    assert len(old) == 6 and old_manifest["lineage"] == LINEAGE
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert f"datasets/snapshots/{a.version}/table/_delta_log/00000000000000000000.json" in keys
    assert not write_snapshot(store, _snapshot_frame(6), LINEAGE).created


def test_hash_is_the_same_whatever_the_row_batch_size(monkeypatch):
    # content_hash walks the rows in batches to bound memory; the batches must not show in the hash.
    df = _snapshot_frame(12)
    whole = content_hash(df)
    monkeypatch.setattr("llama_platform.data.snapshot._HASH_BATCH_ROWS", 5)
    assert content_hash(df) == whole
    monkeypatch.setattr("llama_platform.data.snapshot._HASH_BATCH_ROWS", 1)
    assert content_hash(df.sample(frac=1, random_state=3)) == whole


def test_canonical_columns_equal_the_general_canonical_values():
    # The per-dtype fast paths must give exactly what the general conversion gives: the content
    # hash of every snapshot ever written depends on it.
    from llama_platform.data.snapshot import _canonical_column, _canonical_value

    df = _snapshot_frame(6)
    df.loc[1, "author"] = None
    df.loc[2, "body"] = "naïve café — 启动失败 \u2028 \"quoted\" \\ tab\t"
    df.loc[3, "closed_at"] = pd.NaT
    df.loc[4, "created_at"] = pd.Timestamp("2024-03-01 10:00:00.123456789", tz="UTC")  # a fraction
    df.loc[5, "updated_at"] = pd.Timestamp("2024-03-01 12:00:00", tz="Europe/Paris")  # another zone
    for column in df.columns:
        general = [_canonical_value(v) for v in df[column]]
        if isinstance(df[column].dtype, pd.DatetimeTZDtype):
            general = [None if pd.isna(v) else v.tz_convert("UTC").isoformat() for v in df[column]]
        fast = _canonical_column(df[column])
        assert fast == general and [type(v) for v in fast] == [type(v) for v in general], column
