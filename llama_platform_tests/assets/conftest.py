"""Fixtures for the Dagster-layer tests: a persistent test instance and store-backed resources."""

from __future__ import annotations

import pytest
from dagster import instance_for_test

from llama_platform.resources.cleaning import CleaningResource
from llama_platform.resources.io_manager import ParquetIOManager
from llama_platform.resources.object_store import ObjectStoreResource


@pytest.fixture()
def instance(tmp_path):
    # A persistent (sqlite) instance, like the platform's: checks read materialization metadata from it.
    (tmp_path / "dagster").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "dagster")) as inst:
        yield inst


@pytest.fixture()
def store_url(tmp_path) -> str:
    return f"file://{tmp_path}/store"


@pytest.fixture()
def resources(store_url, tmp_path) -> dict:
    return {
        "parquet_io_manager": ParquetIOManager(url=store_url),
        "object_store": ObjectStoreResource(url=store_url),
        "cleaning": CleaningResource(spill_dir=str(tmp_path / "spill")),
    }
