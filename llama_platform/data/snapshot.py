"""Immutable, content-addressed dataset snapshots with train/val/test parquet files.

Layout in the store:
    snapshots/<hash[:16]>/train.parquet, val.parquet, test.parquet, manifest.json
    snapshots/LATEST            the version written most recently (by created_at)

The hash covers a canonical serialisation of the sorted rows (split included), so the same data
always gets the same version, and writing it again is a no-op. The manifest is written last: a
folder without one is an interrupted write and is completed by the next writer.
"""

from __future__ import annotations

import hashlib
import json
import math
import posixpath
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from llama_platform.data.cleaning import CLEANED_COLUMNS
from llama_platform.data.schemas import SPLITS, SnapshotSchema
from llama_platform.data.store import StoreLocation

SNAPSHOT_COLUMNS = CLEANED_COLUMNS + ["split"]
FORMAT_VERSION = 1
_ROOT = "snapshots"
_LATEST = posixpath.join(_ROOT, "LATEST")

_TS = pa.timestamp("ns", tz="UTC")
ARROW_SCHEMA = pa.schema(
    [
        ("issue_id", pa.string()),
        ("source", pa.string()),
        ("repo", pa.string()),
        ("number", pa.string()),
        ("title", pa.string()),
        ("body", pa.string()),
        ("comments_text", pa.string()),
        ("n_comments", pa.int64()),
        ("labels", pa.list_(pa.string())),
        ("label", pa.string()),
        ("state", pa.string()),
        ("author", pa.string()),
        ("author_association", pa.string()),
        ("created_at", _TS),
        ("updated_at", _TS),
        ("closed_at", _TS),
        ("dup_cluster", pa.string()),
        ("redactions", pa.int64()),
        ("raw_hash", pa.string()),
        ("split", pa.string()),
    ]
)
assert ARROW_SCHEMA.names == SNAPSHOT_COLUMNS


class SnapshotIntegrityError(RuntimeError):
    """A stored snapshot's rows no longer hash to its version (corrupted or tampered with)."""


@dataclass(frozen=True)
class SnapshotInfo:
    version: str  # hash[:16], the folder name
    content_hash: str
    uri: str
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


def content_hash(df: pd.DataFrame) -> str:
    """sha256 over the rows sorted by issue_id, each row as canonical JSON (sorted keys)."""
    ordered = df.sort_values("issue_id", kind="stable")
    h = hashlib.sha256()
    for row in ordered[SNAPSHOT_COLUMNS].to_dict("records"):
        line = json.dumps(
            {k: _canonical_value(v) for k, v in row.items()}, sort_keys=True, ensure_ascii=False, separators=(",", ":")
        )
        h.update(line.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def _to_parquet(df: pd.DataFrame) -> bytes:
    table = pa.Table.from_pandas(df[SNAPSHOT_COLUMNS], schema=ARROW_SCHEMA, preserve_index=False)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def _from_parquet(data: bytes) -> pd.DataFrame:
    df = pq.read_table(pa.BufferReader(data)).to_pandas()
    df["labels"] = df["labels"].map(list)  # arrow gives numpy arrays; the contract is lists
    return df


def _ns_timestamps(df: pd.DataFrame) -> pd.DataFrame:
    """Bring tz-aware timestamp columns to nanoseconds: a parquet round trip may return microseconds.

    Naive timestamps are left alone, so the schema still refuses them.
    """
    out = df.copy()
    for col in ("created_at", "updated_at", "closed_at"):
        if col in out and isinstance(out[col].dtype, pd.DatetimeTZDtype):
            out[col] = out[col].dt.as_unit("ns")
    return out


def _manifest_path(version: str) -> str:
    return posixpath.join(_ROOT, version, "manifest.json")


def write_snapshot(
    store: StoreLocation, df: pd.DataFrame, lineage: dict[str, Any], created_at: datetime | None = None
) -> SnapshotInfo:
    """Write `df` (cleaned columns + split) as an immutable snapshot; a no-op if its content exists."""
    df = SnapshotSchema.validate(_ns_timestamps(df))[SNAPSHOT_COLUMNS]
    df = df.sort_values("issue_id", kind="stable").reset_index(drop=True)
    digest = content_hash(df)
    version = digest[:16]
    if store.exists(_manifest_path(version)):
        manifest = json.loads(store.read_bytes(_manifest_path(version)))
        return SnapshotInfo(version, digest, store.uri(_ROOT, version), False, manifest)

    created = (created_at or datetime.now(timezone.utc)).astimezone(timezone.utc)
    manifest = {
        "format_version": FORMAT_VERSION,
        "version": version,
        "content_hash": digest,
        "created_at": created.isoformat(),
        "row_counts": {s: int((df["split"] == s).sum()) for s in SPLITS},
        "total_rows": len(df),
        "files": {s: f"{s}.parquet" for s in SPLITS},
        "lineage": lineage,
        "schema": [{"name": f.name, "type": str(f.type)} for f in ARROW_SCHEMA],
    }
    json.dumps(manifest)  # fail before writing anything if the lineage is not JSON
    for s in SPLITS:
        store.write_bytes(posixpath.join(_ROOT, version, f"{s}.parquet"), _to_parquet(df[df["split"] == s]))
    store.write_bytes(_manifest_path(version), json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8"))
    latest = _latest_manifest(store)
    if latest is None or latest["created_at"] <= manifest["created_at"]:
        store.write_bytes(_LATEST, version.encode("utf-8"))
    return SnapshotInfo(version, digest, store.uri(_ROOT, version), True, manifest)


def list_snapshots(store: StoreLocation) -> list[dict[str, Any]]:
    """Manifests of all complete snapshots, oldest first."""
    manifests = []
    for name in store.listdir(_ROOT):
        if store.exists(_manifest_path(name)):
            manifests.append(json.loads(store.read_bytes(_manifest_path(name))))
    return sorted(manifests, key=lambda m: (m["created_at"], m["version"]))


def _latest_manifest(store: StoreLocation) -> dict[str, Any] | None:
    if store.exists(_LATEST):
        version = store.read_bytes(_LATEST).decode("utf-8").strip()
        if store.exists(_manifest_path(version)):
            return json.loads(store.read_bytes(_manifest_path(version)))
    manifests = list_snapshots(store)
    return manifests[-1] if manifests else None


def read_snapshot(
    store: StoreLocation, version: str | None = None, verify: bool = True
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Load a snapshot (latest when `version` is None) as one frame with a `split` column.

    `version` is the 16-character folder name or the full content hash. With `verify`, the rows are
    re-hashed and must match the version, so a corrupted or edited snapshot is never used silently.
    """
    if version is None:
        manifest = _latest_manifest(store)
        if manifest is None:
            raise FileNotFoundError(f"no snapshots in {store.uri(_ROOT)}")
    else:
        if not store.exists(_manifest_path(version[:16])):
            raise FileNotFoundError(f"snapshot {version!r} not found in {store.uri(_ROOT)}")
        manifest = json.loads(store.read_bytes(_manifest_path(version[:16])))
        if not manifest["content_hash"].startswith(version):
            raise FileNotFoundError(f"snapshot {version!r} not found (folder holds {manifest['content_hash']})")
    folder = posixpath.join(_ROOT, manifest["version"])
    parts = [_from_parquet(store.read_bytes(posixpath.join(folder, manifest["files"][s]))) for s in SPLITS]
    # Empty splits are left out of the concat (pandas would otherwise loosen the column dtypes).
    df = pd.concat([p for p in parts if len(p)] or parts[:1], ignore_index=True)[SNAPSHOT_COLUMNS]
    df = df.sort_values("issue_id", kind="stable").reset_index(drop=True)
    if verify and content_hash(df) != manifest["content_hash"]:
        raise SnapshotIntegrityError(f"snapshot {manifest['version']} does not match its content hash")
    return df, manifest
