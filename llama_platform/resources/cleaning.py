"""How the preprocessor runs: worker processes, chunk size, and where it spills between passes."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field


class CleaningResource(ConfigurableResource):
    spill_dir: str = Field(description="local scratch folder: candidate rows wait here between the two passes")
    workers: int = Field(default=1, ge=1, description="processes that clean chunks (1: the step's own)")
    chunk_rows: int = Field(default=5_000, ge=1, description="raw rows per chunk; memory per worker grows with it")
