"""Forge connectors (GitHub via PyGithub, Gitee v5 via httpx) as one Dagster resource."""

from __future__ import annotations

from typing import Optional

from dagster import ConfigurableResource

from llama_platform.sources.gitee import GiteeForge
from llama_platform.sources.github import GitHubForge


class ForgeResource(ConfigurableResource):
    github_base_url: str
    gitee_base_url: str
    # Given as dagster.EnvVar in definitions: resolved at run time, never displayed.
    github_token: Optional[str] = None
    gitee_token: Optional[str] = None
    per_page: int = 100

    def client(self, source: str) -> GitHubForge | GiteeForge:
        if source == "github":
            return GitHubForge(self.github_base_url, self.github_token, per_page=self.per_page)
        if source == "gitee":
            return GiteeForge(self.gitee_base_url, self.gitee_token, per_page=self.per_page)
        raise ValueError(f"unknown forge {source!r}: expected github or gitee")
