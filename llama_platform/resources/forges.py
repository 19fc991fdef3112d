"""Forge connectors (GitHub via PyGithub, Gitee v5 via httpx) as one Dagster resource."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Optional
from urllib.parse import quote

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
    # Longest rate-limit wait before failing clearly (RateLimitExhausted) instead of sleeping.
    max_wait_s: float = 60.0
    # GitHub App auth (instead of a token): app id, installation id, and the private key PEM
    # (EnvVar) or a path to it.
    github_app_id: Optional[str] = None
    github_app_installation_id: Optional[int] = None
    github_app_private_key: Optional[str] = None
    github_app_private_key_path: Optional[str] = None
    # Local folder for pagination checkpoints (resume after a killed run).
    checkpoint_dir: Optional[str] = None

    def checkpoint_path(self, repo_key: str, since: datetime | None) -> str | None:
        if not self.checkpoint_dir:
            return None
        stamp = since.strftime("%Y%m%dT%H%M%S") if since else "all"
        path = Path(self.checkpoint_dir) / f"{quote(repo_key, safe='')}@{stamp}"
        path.parent.mkdir(parents=True, exist_ok=True)
        return str(path)

    def client(self, source: str) -> GitHubForge | GiteeForge:
        if source == "github":
            key = self.github_app_private_key
            if not key and self.github_app_private_key_path:
                key = Path(self.github_app_private_key_path).read_text()
            app = {}
            if self.github_app_id and key:
                app = {"app_id": self.github_app_id, "app_private_key": key,
                       "installation_id": self.github_app_installation_id}
            return GitHubForge(self.github_base_url, self.github_token, per_page=self.per_page,
                               max_wait=self.max_wait_s, **app)
        if source == "gitee":
            return GiteeForge(self.gitee_base_url, self.gitee_token, per_page=self.per_page, max_wait=self.max_wait_s)
        raise ValueError(f"unknown forge {source!r}: expected github or gitee")
