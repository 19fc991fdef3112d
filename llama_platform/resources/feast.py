"""Where the Feast feature repo keeps its registry, sources and sqlite online store."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource

from llama_platform.features.store import FeatureRepoConfig


class FeastResource(ConfigurableResource):
    data_dir: str

    def repo_config(self) -> FeatureRepoConfig:
        data_dir = Path(self.data_dir)
        return FeatureRepoConfig(repo_dir=data_dir / "repo", data_dir=data_dir)
