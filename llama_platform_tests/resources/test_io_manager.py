"""The Parquet IO manager round-trips partitioned DataFrames through a folder and a real S3 server."""

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import AssetIn, DynamicPartitionsDefinition, DagsterInstance, asset, materialize

from llama_platform.data.store import open_store
from llama_platform.resources.io_manager import ParquetIOManager, ParquetParts

parts = DynamicPartitionsDefinition(name="repos")


@asset(partitions_def=parts, io_manager_key="io")
def upstream(context) -> pd.DataFrame:
    return pd.DataFrame({"repo": [context.partition_key] * 2, "n": [1, 2], "labels": [["bug"], []]})


@asset(io_manager_key="io", ins={"upstream": AssetIn()})
def downstream(upstream: pd.DataFrame) -> pd.DataFrame:
    return upstream.assign(n=upstream["n"] * 10)


def _run(io: ParquetIOManager):
    instance = DagsterInstance.ephemeral()
    keys = ["github:octo/a", "gitee:zh/b"]
    instance.add_dynamic_partitions("repos", keys)
    for key in keys:
        assert materialize([upstream, downstream], selection=["upstream"], partition_key=key,
                           instance=instance, resources={"io": io}).success
    result = materialize([upstream, downstream], selection=["downstream"], instance=instance, resources={"io": io})
    assert result.success
    return result.output_for_node("downstream")


def test_partitions_round_trip_local(tmp_path):
    out = _run(ParquetIOManager(url=(tmp_path / "store").as_uri()))
    assert sorted(out["repo"].unique()) == ["gitee:zh/b", "github:octo/a"]
    assert out["n"].tolist().count(10) == 2 and len(out) == 4
    assert list(out["labels"].iloc[0]) == ["bug"]
    files = sorted(p.name for p in (tmp_path / "store" / "assets" / "upstream").iterdir())
    assert files == ["gitee%3Azh%2Fb.parquet", "github%3Aocto%2Fa.parquet"]


def test_partitions_round_trip_s3(s3_server, s3_bucket):
    io = ParquetIOManager(url=f"s3://{s3_bucket}/platform", endpoint_url=s3_server.endpoint_url,
                          access_key=s3_server.access_key, secret_key=s3_server.secret_key)
    out = _run(io)
    assert len(out) == 4
    store = open_store(f"s3://{s3_bucket}/platform", s3_server.endpoint_url, s3_server.access_key, s3_server.secret_key)
    assert store.exists("assets/downstream/all.parquet")


def test_missing_partition_is_a_clear_error(tmp_path):
    io = ParquetIOManager(url=(tmp_path / "store").as_uri())
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("repos", ["github:octo/a"])
    with pytest.raises(Exception, match="has not been materialised"):
        materialize([upstream, downstream], selection=["downstream"], instance=instance, resources={"io": io})


def test_wrong_s3_keys_are_refused(s3_server, s3_bucket):
    store = open_store(f"s3://{s3_bucket}/x", s3_server.endpoint_url, "wrong", "wrong-secret")
    with pytest.raises(OSError):
        store.write_bytes("a.txt", b"x")


@asset(io_manager_key="io")
def big(context) -> ParquetParts:
    # Written as parts, e.g. by a streaming cleaner; the second part's column is all null.
    paths = []
    for k, names in enumerate([["a", "b"], [None, None, None]]):
        Path(context.instance.storage_directory()).mkdir(parents=True, exist_ok=True)
        path = Path(context.instance.storage_directory()) / f"part-{k}.parquet"
        table = pa.table({"n": [k] * len(names), "name": pa.array(names, type=pa.string())})
        pq.write_table(table, path, row_group_size=2)
        paths.append(path)
    return ParquetParts(paths)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_parts_are_stored_as_one_table_and_stream_back(where, tmp_path, request):
    if where == "local":
        io = ParquetIOManager(url=(tmp_path / "store").as_uri())
    else:
        s3_server, s3_bucket = request.getfixturevalue("s3_server"), request.getfixturevalue("s3_bucket")
        io = ParquetIOManager(url=f"s3://{s3_bucket}/platform", endpoint_url=s3_server.endpoint_url,
                              access_key=s3_server.access_key, secret_key=s3_server.secret_key)
    instance = DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster"))
    assert materialize([big], instance=instance, resources={"io": io}).success
    batches = list(io.iter_batches(["big"], batch_rows=2))
    assert [b.num_rows for b in batches] == [2, 2, 1]  # one row group of a part at a time
    rows = pa.Table.from_batches(batches).to_pylist()
    assert [r["n"] for r in rows] == [0, 0, 1, 1, 1] and [r["name"] for r in rows][:2] == ["a", "b"]
    assert len(io.read(["big"], None)) == 5
    with pytest.raises(FileNotFoundError, match="has not been materialised"):
        next(io.iter_batches(["never_written"]))
