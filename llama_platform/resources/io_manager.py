"""IO manager: pandas DataFrames as Parquet in the object store, one file per asset partition.

Written on pyarrow's filesystem layer rather than UPathIOManager so that local folders and S3
endpoints (SeaweedFS, MinIO) share one code path without adding s3fs/aiobotocore to the
dependency set (they fight boto3's pins).
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence
from urllib.parse import quote

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from dagster import ConfigurableIOManager, InputContext, OutputContext

from llama_platform.data.store import StoreLocation, open_store


def _partition_file(partition_key: str | None) -> str:
    # Partition keys look like "github:owner/name"; quote them into one safe file name.
    return "all.parquet" if partition_key is None else quote(partition_key, safe="") + ".parquet"


@dataclass(frozen=True)
class ParquetParts:
    """An output too large for one DataFrame: local Parquet files with one schema, stored as one
    Parquet file (row groups copied part by part, so memory holds one row group at a time)."""

    paths: Sequence[Path]


class ParquetIOManager(ConfigurableIOManager):
    url: str
    endpoint_url: Optional[str] = None
    region: str = "us-east-1"
    access_key: Optional[str] = None
    secret_key: Optional[str] = None

    def _store(self) -> StoreLocation:
        return open_store(self.url, self.endpoint_url, self.access_key, self.secret_key, self.region)

    @staticmethod
    def _rel(asset_key_path: list[str], partition_key: str | None) -> str:
        return "/".join(["assets", *asset_key_path, _partition_file(partition_key)])

    def handle_output(self, context: OutputContext, obj) -> None:
        """A DataFrame for one partition (or an unpartitioned asset), or, for a run over several
        partitions (single-run backfill), a dict {partition key: DataFrame} covering each of them."""
        if obj is None:
            return
        store = self._store()
        key_path = list(context.asset_key.path)
        if isinstance(obj, dict):
            expected = {str(k) for k in context.asset_partition_keys} if context.has_asset_partitions else set()
            got = {str(k) for k in obj}
            if got != expected:
                raise ValueError(
                    f"{'/'.join(key_path)}: output covers partitions {sorted(got - expected)[:5]} not asked for "
                    f"and misses {sorted(expected - got)[:5]}"
                )
            for key, df in obj.items():
                self._write(store, self._rel(key_path, str(key)), df)
            context.add_output_metadata({"storage_path": store.uri("assets", *key_path)})
            return
        partition = context.asset_partition_key if context.has_asset_partitions else None
        rel = self._rel(key_path, partition)
        if isinstance(obj, ParquetParts):
            self._write_parts(store, rel, obj)
        else:
            self._write(store, rel, obj)
        context.add_output_metadata({"storage_path": store.uri(rel)})

    @staticmethod
    def _write_parts(store: StoreLocation, rel: str, parts: ParquetParts) -> None:
        if not parts.paths:
            raise ValueError("ParquetParts needs at least one part (its schema is the table's)")
        schema = pq.read_schema(parts.paths[0])
        full = store.path(rel)
        store.fs.create_dir(full.rsplit("/", 1)[0], recursive=True)
        # Written beside the target, then moved over it: a failure half-way (a bad part, a lost
        # connection) must not leave a valid-looking but truncated table in place of the last one.
        tmp = f"{full}.{uuid.uuid4().hex}.tmp"
        try:
            with store.fs.open_output_stream(tmp) as sink, pq.ParquetWriter(sink, schema) as writer:
                for path in parts.paths:
                    part = pq.ParquetFile(path)
                    for i in range(part.num_row_groups):
                        writer.write_table(part.read_row_group(i).cast(schema))
            store.fs.move(tmp, full)
        except BaseException:
            if store.fs.get_file_info(tmp).type != pafs.FileType.NotFound:
                store.fs.delete_file(tmp)
            raise

    @staticmethod
    def _write(store: StoreLocation, rel: str, df: pd.DataFrame) -> None:
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"ParquetIOManager stores pandas DataFrames or ParquetParts, got {type(df).__name__}")
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), buf)
        store.write_bytes(rel, buf.getvalue())

    def read(self, key_path: list[str], partition_key: str | None) -> pd.DataFrame | None:
        store = self._store()
        rel = self._rel(key_path, partition_key)
        if not store.exists(rel):
            return None
        return pq.read_table(io.BytesIO(store.read_bytes(rel))).to_pandas()

    def _existing(self, store: StoreLocation, key_path: list[str], keys: list, log=None) -> list[str]:
        """The stored files of `keys` (None: unpartitioned). Reading one partition (or an
        unpartitioned asset) that was never written is an error; reading "all partitions" of a
        repo x month asset skips those never materialised (a repo's history does not reach back to
        the first window), and says how many."""
        found, missing = [], []
        for key in keys:
            rel = self._rel(key_path, key)
            if store.exists(rel):
                found.append(rel)
            else:
                missing.append(key)
        if missing and (len(keys) == 1 or not found):
            raise FileNotFoundError(
                f"{'/'.join(key_path)} partition {missing[0]!r} has not been materialised "
                f"({store.uri(self._rel(key_path, missing[0]))})"
            )
        if missing and log is not None:
            log.info(f"{'/'.join(key_path)}: {len(found)} partitions read, {len(missing)} never materialised")
        return found

    def load_input(self, context: InputContext) -> pd.DataFrame:
        store = self._store()
        key_path = list(context.asset_key.path)
        keys = list(context.asset_partition_keys) if context.has_asset_partitions else [None]
        frames = [
            pq.read_table(io.BytesIO(store.read_bytes(rel))).to_pandas()
            for rel in self._existing(store, key_path, keys, context.log)
        ]
        if len(frames) == 1:
            return frames[0]
        return pd.concat(frames, ignore_index=True)

    def iter_batches(
        self, key_path: list[str], partition_keys: Sequence[str | None] = (None,), batch_rows: int = 5_000, log=None,
        columns: list[str] | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Stream the stored rows of `partition_keys` (None: unpartitioned) in Arrow batches of at
        most `batch_rows`: for inputs too large to load at once (same missing-partition rules)."""
        store = self._store()
        for rel in self._existing(store, key_path, list(partition_keys), log):
            with store.fs.open_input_file(store.path(rel)) as f:
                # pre_buffer keeps every column chunk read until the file closes (~1 KiB per raw row
                # for the whole of a large partition): off, memory stays flat while streaming.
                yield from pq.ParquetFile(f, pre_buffer=False).iter_batches(batch_size=batch_rows, columns=columns)


def read_partition(context, asset_key, partition_key: str) -> pd.DataFrame | None:
    """Stored rows of one partition of `asset_key`, via the run's parquet IO manager (None if unwritten)."""
    io_manager: ParquetIOManager = context.resources.parquet_io_manager
    return io_manager.read(list(asset_key.path), partition_key)
