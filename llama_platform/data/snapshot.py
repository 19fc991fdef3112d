"""Immutable, content-addressed dataset snapshots as Delta Lake tables in the object store.

Layout in the store (a local folder or any S3 endpoint):
    snapshots/<version>/table/          a Delta table (partitioned by split), committed once
    snapshots/<version>/manifest.json   content hash, lineage, row/label/language counts per split
    snapshots/LATEST                    the version written most recently (by created_at)

`version` is the first 16 hex digits of the content hash: a sha256 over the canonical rows sorted by
issue_id (split included), so the same data always gets the same version and writing it again is a
no-op. One Delta table per content hash (rather than one table overwritten per snapshot and read
back by Delta version) because:
  * immutability holds by construction: a table is written once (`mode="error"`, `delta.appendOnly`)
    and no later write, `vacuum` or log clean-up of another snapshot can remove its files;
  * the version names the content, so a rebuild of the same data finds its existing snapshot, and a
    version string means the same rows on every store it is copied to.
Each table still carries the manifest in its commit metadata, so plain Delta readers (Spark, DuckDB,
polars) see the lineage in the table history. The manifest file is written after the Delta commit:
a table without one is an interrupted write, which the next writer checks and completes.
"""

from __future__ import annotations

import hashlib
import json
import math
import posixpath
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute in _combine_digests)
from deltalake import CommitProperties, DeltaTable, write_deltalake

from llama_platform.data.cleaning import CLEANED_ARROW_SCHEMA, CLEANED_COLUMNS
from llama_platform.data.schemas import SPLITS, SnapshotSchema
from llama_platform.data.store import StoreLocation

SNAPSHOT_COLUMNS = CLEANED_COLUMNS + ["split"]
FORMAT_VERSION = 2
ROOT = "snapshots"
TABLE_DIR = "table"
_LATEST = posixpath.join(ROOT, "LATEST")
_TIMESTAMPS = ("created_at", "updated_at", "closed_at")
MANIFEST_COMMIT_KEY = "llama_platform.manifest"
_HASH_BATCH_ROWS = 20_000

# Delta stores timestamps in microseconds; frames in memory use nanoseconds (see _ns_timestamps).
_TS = pa.timestamp("us", tz="UTC")
ARROW_SCHEMA = pa.schema(
    [pa.field(f.name, _TS) if pa.types.is_timestamp(f.type) else f for f in CLEANED_ARROW_SCHEMA]
    + [pa.field("split", pa.string())]
)
assert ARROW_SCHEMA.names == SNAPSHOT_COLUMNS


class SnapshotIntegrityError(RuntimeError):
    """A stored snapshot's rows no longer hash to its version (corrupted or tampered with)."""


@dataclass(frozen=True)
class SnapshotInfo:
    version: str  # hash[:16], the folder name
    content_hash: str
    uri: str  # the Delta table's URI
    created: bool  # False when this content already existed (the write was a no-op)
    manifest: dict[str, Any]

    @property
    def row_counts(self) -> dict[str, int]:
        return self.manifest["row_counts"]


def _canonical_value(v: Any) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT:
        return None
    if isinstance(v, pd.Timestamp):
        return v.tz_convert("UTC").isoformat()
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_canonical_value(x) for x in v]
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def _canonical_column(s: pd.Series) -> list:
    """`_canonical_value` of every value, with fast paths per dtype (hashing is per row and value)."""
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        # Timestamp.isoformat() of whole seconds, vectorised in numpy; the rest (fractions) as is.
        utc = s.dt.tz_convert("UTC")
        ns = utc.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
        whole = np.datetime_as_string(ns.astype("datetime64[s]"), unit="s")
        fraction = ~np.isnat(ns) & (ns.astype(np.int64) % 1_000_000_000 != 0)
        out = np.char.add(whole, "+00:00").astype(object)
        out[np.isnat(ns)] = None
        for k in np.flatnonzero(fraction):
            out[k] = utc.iloc[k].isoformat()
        return out.tolist()
    if pd.api.types.is_integer_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
        return s.tolist()  # Python ints/bools already
    # Text columns: a str is its own canonical value; anything else takes the general path.
    return [v if type(v) is str else _canonical_value(v) for v in s]


def content_hash(df: pd.DataFrame) -> str:
    """sha256 over the rows sorted by issue_id, each row as canonical JSON (sorted keys)."""
    ordered = df.sort_values("issue_id", kind="stable")
    names = sorted(SNAPSHOT_COLUMNS)
    h = hashlib.sha256()
    dumps = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode
    # In row batches: the canonical values of a whole large frame would cost more memory than the frame.
    for start in range(0, len(ordered), _HASH_BATCH_ROWS):
        batch = ordered.iloc[start : start + _HASH_BATCH_ROWS]
        columns = [_canonical_column(batch[c]) for c in names]
        for values in zip(*columns):
            h.update(dumps(dict(zip(names, values))).encode("utf-8"))
            h.update(b"\n")
    return h.hexdigest()


def _ns_timestamps(df: pd.DataFrame) -> pd.DataFrame:
    """Bring tz-aware timestamp columns to nanoseconds: a parquet/Delta round trip gives microseconds.

    Naive timestamps are left alone, so the schema still refuses them.
    """
    out = df.copy()
    for col in _TIMESTAMPS:
        if col in out and isinstance(out[col].dtype, pd.DatetimeTZDtype):
            out[col] = out[col].dt.as_unit("ns")
    return out


def _from_arrow(table: pa.Table) -> pd.DataFrame:
    df = table.to_pandas()
    df["labels"] = df["labels"].map(list)  # arrow gives numpy arrays; the contract is lists
    for col in _TIMESTAMPS:
        df[col] = pd.to_datetime(df[col], utc=True).astype("datetime64[ns, UTC]")
    return df


def _manifest_path(version: str) -> str:
    return posixpath.join(ROOT, version, "manifest.json")


def _read_manifest(store: StoreLocation, version: str) -> dict[str, Any]:
    return json.loads(store.read_bytes(_manifest_path(version)))


def _nested_counts(df: pd.DataFrame, column: str) -> dict[str, dict[str, int]]:
    return {s: dict(sorted(Counter(df.loc[df["split"] == s, column]).items())) for s in SPLITS}


def _read_table(store: StoreLocation, version: str, columns: list[str] | None = None) -> pa.Table:
    dt = DeltaTable(store.table_uri(ROOT, version, TABLE_DIR), storage_options=store.storage_options or None)
    try:
        return dt.to_pyarrow_table(columns=columns)
    except pa.ArrowInvalid as exc:  # a data file that is no longer the one the log recorded
        raise SnapshotIntegrityError(f"snapshot {version}: unreadable data file ({exc})") from exc


def write_snapshot(
    store: StoreLocation, df: pd.DataFrame, lineage: dict[str, Any], created_at: datetime | None = None
) -> SnapshotInfo:
    """Write `df` (cleaned columns + split) as an immutable snapshot; a no-op if its content exists.

    `lineage` should name the raw partitions and the code version the rows came from; it must be JSON.
    """
    df = SnapshotSchema.validate(_ns_timestamps(df))[SNAPSHOT_COLUMNS]
    df = df.sort_values("issue_id", kind="stable").reset_index(drop=True)
    digest = content_hash(df)
    version = digest[:16]
    uri = store.table_uri(ROOT, version, TABLE_DIR)
    if store.exists(_manifest_path(version)):
        return SnapshotInfo(version, digest, uri, False, _read_manifest(store, version))

    manifest = _manifest(
        digest, created_at, lineage, format_version=FORMAT_VERSION,
        row_counts={s: int((df["split"] == s).sum()) for s in SPLITS},
        total_rows=len(df),
        label_counts=_nested_counts(df, "label"),
        lang_counts=_nested_counts(df, "lang"),
    )
    manifest_json = json.dumps(manifest, indent=2, sort_keys=True)  # fails before writing if not JSON
    if not _resume_table(store, uri, manifest, content_hash):
        table = pa.Table.from_pandas(df, schema=ARROW_SCHEMA, preserve_index=False, safe=False)
        _write_table(store, uri, table, version, manifest_json)
    return _publish(store, uri, manifest, manifest_json)


def _manifest(digest: str, created_at: datetime | None, lineage: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    created = (created_at or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return {
        **fields,
        "version": digest[:16],
        "content_hash": digest,
        "created_at": created.isoformat(),
        "table": {"format": "delta", "path": TABLE_DIR, "delta_version": 0, "partition_by": ["split"]},
        "lineage": lineage,
        "schema": [{"name": f.name, "type": str(f.type)} for f in ARROW_SCHEMA],
    }


def _resume_table(store: StoreLocation, uri: str, manifest: dict, hash_of: Callable[[pd.DataFrame], str]) -> bool:
    """True when an interrupted writer already committed this version's table (checked to hold
    exactly these rows with `hash_of`); False when the table still has to be written."""
    if not DeltaTable.is_deltatable(uri, storage_options=store.storage_options or None):
        return False
    stored, _ = read_snapshot(store, manifest["version"], verify=False, _manifest=manifest)
    if hash_of(stored) != manifest["content_hash"]:
        raise SnapshotIntegrityError(f"table {uri} exists but does not hold snapshot {manifest['version']}")
    return True


def _write_table(
    store: StoreLocation, uri: str, data: pa.Table | pa.RecordBatchReader, version: str, manifest_json: str
) -> None:
    write_deltalake(
        uri,
        data,
        partition_by=["split"],
        mode="error",  # never overwrite: a version's table is written exactly once
        name=f"issue_snapshot_{version}",
        configuration={"delta.appendOnly": "true"},
        storage_options=store.storage_options or None,
        commit_properties=CommitProperties(custom_metadata={MANIFEST_COMMIT_KEY: manifest_json}),
    )


def _publish(store: StoreLocation, uri: str, manifest: dict, manifest_json: str) -> SnapshotInfo:
    """Write the manifest (the snapshot is complete from here on) and move LATEST if it is newest."""
    version = manifest["version"]
    store.write_bytes(_manifest_path(version), manifest_json.encode("utf-8"))
    latest = _latest_manifest(store)
    if latest is None or latest["created_at"] <= manifest["created_at"]:
        store.write_bytes(_LATEST, version.encode("utf-8"))
    return SnapshotInfo(version, manifest["content_hash"], uri, True, manifest)


def list_snapshots(store: StoreLocation) -> list[dict[str, Any]]:
    """Manifests of all complete snapshots, oldest first."""
    manifests = [_read_manifest(store, name) for name in store.listdir(ROOT) if store.exists(_manifest_path(name))]
    return sorted(manifests, key=lambda m: (m["created_at"], m["version"]))


def _latest_manifest(store: StoreLocation) -> dict[str, Any] | None:
    if store.exists(_LATEST):
        version = store.read_bytes(_LATEST).decode("utf-8").strip()
        if store.exists(_manifest_path(version)):
            return _read_manifest(store, version)
    manifests = list_snapshots(store)
    return manifests[-1] if manifests else None


def resolve_manifest(store: StoreLocation, version: str | None = None) -> dict[str, Any]:
    """The manifest of `version` (16-character version or full/longer hash prefix), or of the latest."""
    if version is None:
        manifest = _latest_manifest(store)
        if manifest is None:
            raise FileNotFoundError(f"no snapshots in {store.uri(ROOT)}")
        return manifest
    if len(version) < 16 or not store.exists(_manifest_path(version[:16])):
        raise FileNotFoundError(f"snapshot {version!r} not found in {store.uri(ROOT)}")
    manifest = _read_manifest(store, version[:16])
    if not manifest["content_hash"].startswith(version):
        raise FileNotFoundError(f"snapshot {version!r} not found (folder holds {manifest['content_hash']})")
    return manifest


def read_snapshot(
    store: StoreLocation, version: str | None = None, verify: bool = True, *, _manifest: dict | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Load a snapshot (latest when `version` is None) as one frame with a `split` column.

    `version` is the 16-character version or the full content hash. With `verify`, the rows are
    re-hashed and must match the version, so a corrupted or edited snapshot is never used silently.
    """
    manifest = _manifest or resolve_manifest(store, version)
    df = _from_arrow(_read_table(store, manifest["version"]))[SNAPSHOT_COLUMNS]
    df = df.sort_values("issue_id", kind="stable").reset_index(drop=True)
    rehash = row_content_hash if manifest.get("format_version") == STREAMING_FORMAT_VERSION else content_hash
    if verify and rehash(df) != manifest["content_hash"]:
        raise SnapshotIntegrityError(f"snapshot {manifest['version']} does not match its content hash")
    return df, manifest


def read_snapshot_columns(store: StoreLocation, version: str, columns: Iterable[str]) -> pd.DataFrame:
    """Some columns of a snapshot, unverified (for listings and diffs: no full read or re-hash)."""
    manifest = resolve_manifest(store, version)
    return _read_table(store, manifest["version"], columns=list(columns)).to_pandas()


# --- Streaming snapshots (format 3) --------------------------------------------------------------
#
# `write_snapshot` hashes (and so holds) the whole frame sorted by issue_id. A streamed snapshot is
# hashed from per-row hashes instead, so only ~100 bytes per row stay in memory:
#   row hash      = sha256 of the row's canonical JSON (the same encoding `content_hash` uses);
#   content hash  = sha256 over the 32-byte row hashes, concatenated in issue_id order.
# The same rows therefore give the same version whatever the batch boundaries or row order. The
# manifest says `format_version: 3` and names the scheme, and `read_snapshot` verifies such a
# snapshot with `row_content_hash`. Format-2 snapshots (write_snapshot) are unchanged.
STREAMING_FORMAT_VERSION = 3
ROW_HASH_SCHEME = "sha256(concat(sha256(canonical_json(row)) for rows ordered by issue_id))"


def _row_digests(df: pd.DataFrame) -> list[bytes]:
    names = sorted(SNAPSHOT_COLUMNS)
    dumps = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode
    columns = [_canonical_column(df[c]) for c in names]
    return [hashlib.sha256(dumps(dict(zip(names, values))).encode("utf-8")).digest() for values in zip(*columns)]


def _combine_digests(ids: pa.ChunkedArray | pa.Array, digests: pa.ChunkedArray | pa.Array) -> str:
    # Equal issue_ids (only in a tampered table: writes refuse them) are ordered by their digest.
    table = pa.table({"issue_id": ids, "digest": digests}).sort_by([("issue_id", "ascending"), ("digest", "ascending")])
    h = hashlib.sha256()
    for chunk in table["digest"].chunks:
        for d in chunk.to_pylist():
            h.update(d)
    return h.hexdigest()


def row_content_hash(df: pd.DataFrame) -> str:
    """The format-3 content hash of a whole frame (see ROW_HASH_SCHEME)."""
    df = _ns_timestamps(df)
    return _combine_digests(pa.array(df["issue_id"], type=pa.string()), pa.array(_row_digests(df), type=pa.binary(32)))


def write_snapshot_streaming(
    store: StoreLocation,
    batches: Callable[[], Iterable[pd.DataFrame]],
    lineage: dict[str, Any],
    created_at: datetime | None = None,
) -> SnapshotInfo:
    """Write a snapshot from batches of rows (cleaned columns + split) without holding them all.

    `batches` is called twice and must give the same rows each time (e.g. `StreamResult.iter_cleaned`):
    once to validate, count and hash them (the version names the table's folder, so it must be known
    before writing), once to stream them into the Delta table. A no-op if the content exists.
    """
    ids: list[pa.Array] = []
    digests: list[pa.Array] = []
    counts = {c: {s: Counter() for s in SPLITS} for c in ("label", "lang")}
    for batch in batches():
        batch = SnapshotSchema.validate(_ns_timestamps(batch))[SNAPSHOT_COLUMNS]
        ids.append(pa.array(batch["issue_id"], type=pa.string()))
        digests.append(pa.array(_row_digests(batch), type=pa.binary(32)))
        for col in counts:
            for s in SPLITS:
                counts[col][s].update(batch.loc[batch["split"] == s, col])
    all_ids = pa.chunked_array(ids, pa.string())
    if pa.compute.count_distinct(all_ids).as_py() != len(all_ids):
        raise ValueError("issue_id must be unique across all batches")
    digest = _combine_digests(all_ids, pa.chunked_array(digests, pa.binary(32)))
    del all_ids
    n_rows = sum(len(a) for a in ids)
    del ids, digests
    version = digest[:16]
    uri = store.table_uri(ROOT, version, TABLE_DIR)
    if store.exists(_manifest_path(version)):
        return SnapshotInfo(version, digest, uri, False, _read_manifest(store, version))

    manifest = _manifest(
        digest, created_at, lineage, format_version=STREAMING_FORMAT_VERSION,
        content_hash_scheme=ROW_HASH_SCHEME,
        row_counts={s: sum(counts["label"][s].values()) for s in SPLITS},
        total_rows=n_rows,
        label_counts={s: dict(sorted(counts["label"][s].items())) for s in SPLITS},
        lang_counts={s: dict(sorted(counts["lang"][s].items())) for s in SPLITS},
    )
    manifest_json = json.dumps(manifest, indent=2, sort_keys=True)  # fails before writing if not JSON
    if not _resume_table(store, uri, manifest, row_content_hash):
        written = 0

        def record_batches() -> Iterator[pa.RecordBatch]:
            nonlocal written
            for batch in batches():
                batch = _ns_timestamps(batch)[SNAPSHOT_COLUMNS]
                written += len(batch)
                yield from pa.Table.from_pandas(batch, schema=ARROW_SCHEMA, preserve_index=False, safe=False).to_batches()

        reader = pa.RecordBatchReader.from_batches(ARROW_SCHEMA, record_batches())
        _write_table(store, uri, reader, version, manifest_json)
        if written != n_rows:  # `batches` gave other rows the second time: the table is not this version
            raise SnapshotIntegrityError(f"batches gave {written} rows to write but {n_rows} to hash")
    return _publish(store, uri, manifest, manifest_json)
