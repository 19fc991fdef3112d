"""IO manager: pandas DataFrames as Parquet in the object store, one file per asset partition.

Written on pyarrow's filesystem layer rather than UPathIOManager so that local folders and S3
endpoints (SeaweedFS, MinIO) share one code path without adding s3fs/aiobotocore to the
dependency set (they fight boto3's pins).
"""

from __future__ import annotations

import io
from typing import Optional
from urllib.parse import quote

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from dagster import ConfigurableIOManager, InputContext, OutputContext

from llama_platform.data.store import StoreLocation, open_store


def _partition_file(partition_key: str | None) -> str:
    # Partition keys look like "github:owner/name"; quote them into one safe file name.
    return "all.parquet" if partition_key is None else quote(partition_key, safe="") + ".parquet"


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

    def handle_output(self, context: OutputContext, obj: pd.DataFrame) -> None:
        if obj is None:
            return
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(f"ParquetIOManager stores pandas DataFrames, got {type(obj).__name__}")
        partition = context.asset_partition_key if context.has_asset_partitions else None
        rel = self._rel(list(context.asset_key.path), partition)
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(obj, preserve_index=False), buf)
        self._store().write_bytes(rel, buf.getvalue())
        context.add_output_metadata({"storage_path": self._store().uri(rel)})

    def load_input(self, context: InputContext) -> pd.DataFrame:
        store = self._store()
        key_path = list(context.asset_key.path)
        if context.has_asset_partitions:
            keys = list(context.asset_partition_keys)
        else:
            keys = [None]
        frames = []
        for key in keys:
            rel = self._rel(key_path, key)
            if not store.exists(rel):
                raise FileNotFoundError(
                    f"{'/'.join(key_path)} partition {key!r} has not been materialised ({store.uri(rel)})"
                )
            frames.append(pq.read_table(io.BytesIO(store.read_bytes(rel))).to_pandas())
        if len(frames) == 1:
            return frames[0]
        return pd.concat(frames, ignore_index=True)
