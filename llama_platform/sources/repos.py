"""The repos list: which forge repos the platform collects, as partition keys `source:owner/name`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

import yaml

_KEY = re.compile(r"^(github|gitee):([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)$")


class RepoListError(ValueError):
    pass


def repo_key(source: str, repo: str) -> str:
    key = f"{source}:{repo}"
    parse_repo_key(key)
    return key


def parse_repo_key(key: str) -> tuple[str, str]:
    m = _KEY.match(key)
    if not m:
        raise RepoListError(f"bad repo {key!r}: expected 'github:owner/name' or 'gitee:owner/name'")
    return m.group(1), m.group(2)


def load_repos(path: Path, override: Iterable[str] = ()) -> list[str]:
    """Repo keys from the YAML list, or from the override (LLAMA_PLATFORM_REPOS) when it is given."""
    override = list(override)
    if override:
        return sorted({repo_key(*parse_repo_key(k)) for k in override})
    try:
        doc = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError as exc:
        raise RepoListError(f"repos file not found: {path}") from exc
    entries = doc.get("repos")
    if not isinstance(entries, list):
        raise RepoListError(f"{path}: expected a top-level 'repos:' list")
    keys = set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "source" not in entry or "repo" not in entry:
            raise RepoListError(f"{path}: entry {i} needs 'source' and 'repo', got {entry!r}")
        keys.add(repo_key(str(entry["source"]), str(entry["repo"])))
    return sorted(keys)
