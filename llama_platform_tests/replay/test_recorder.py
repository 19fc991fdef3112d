"""Recording through the real connectors reproduces the replayed corpus file byte for byte."""

from __future__ import annotations

import pytest

from llama_platform.sources.gitee import GiteeForge
from llama_platform.sources.github import GitHubForge
from llama_platform.replay.recorder import record_repo


@pytest.mark.parametrize("key", ["github:weavekit/weave", "gitee:lingyun-dev/lingyun"])
def test_record_round_trip(replay, corpus_dir, tmp_path, key):
    source, repo = key.split(":")
    forge = GitHubForge(replay.github_url, None) if source == "github" else GiteeForge(replay.gitee_url, None)
    path = record_repo(forge, source, repo, tmp_path)
    assert path.name == f"{source}__{repo.replace('/', '__')}.json.gz"
    assert path.read_bytes() == (corpus_dir / path.name).read_bytes()
    assert not list(tmp_path.glob("*.tmp"))


def test_record_refuses_a_mismatched_connector(replay, tmp_path):
    with pytest.raises(ValueError, match="connector is for 'github'"):
        record_repo(GitHubForge(replay.github_url, None), "gitee", "lingyun-dev/lingyun", tmp_path)
    with pytest.raises(ValueError, match="owner/name"):
        record_repo(GitHubForge(replay.github_url, None), "github", "not a repo", tmp_path)
    assert list(tmp_path.iterdir()) == []
