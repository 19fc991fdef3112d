"""Fixtures for the sources tests: the shipped corpus and one real replay forge process per session."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from llama_platform.settings import SHIPPED_CORPUS_DIR
from llama_platform.sources.corpus import load_corpus
from llama_platform.sources.corpus_generator import MANIFEST_NAME
from llama_platform.sources.replay_forge import ReplayForgeServer


@pytest.fixture(scope="session")
def corpus_dir():
    return SHIPPED_CORPUS_DIR


@pytest.fixture(scope="session")
def corpus(corpus_dir) -> dict[str, dict]:
    """Shipped corpus keyed by "source:owner/name"."""
    return {f"{d['source']}:{d['repo']}": d for d in load_corpus(corpus_dir)}


@pytest.fixture(scope="session")
def manifest(corpus_dir) -> dict:
    return json.loads((corpus_dir / MANIFEST_NAME).read_text(encoding="utf-8"))


def comments_by_issue(data: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for c in data["comments"]:
        if data["source"] == "github":
            out[c["issue_url"].rsplit("/", 1)[-1]].append(c)
        else:
            out[str(c["target"]["issue"]["number"])].append(c)
    return out


@pytest.fixture(scope="session")
def replay(corpus_dir, tmp_path_factory):
    server = ReplayForgeServer(corpus_dir, log_dir=tmp_path_factory.mktemp("replay"))
    server.start()
    yield server
    server.close()
    assert not server.process, "replay forge still running"
