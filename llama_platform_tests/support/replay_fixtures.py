"""Fixtures for the sources and replay tests: the shipped corpus and one real replay forge process per session.

Registered once in the root conftest (pytest_plugins), so both test folders share the session servers.
"""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from llama_platform.settings import SHIPPED_CORPUS_DIR
from llama_platform.replay.corpus import load_corpus
from llama_platform.replay.generator import MANIFEST_NAME
from llama_platform.replay.forge import ReplayForgeServer


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


@pytest.fixture(scope="session")
def small_corpus_dir(tmp_path_factory):
    """A tenth of the shipped corpus (~190 issues): fast to serve, still several pages at small per_page."""
    from llama_platform.replay.generator import write_corpus

    out = tmp_path_factory.mktemp("small-corpus")
    write_corpus(out, scale=0.1)
    return out


@pytest.fixture(scope="session")
def small_replay(small_corpus_dir, tmp_path_factory):
    """One replay forge over the small corpus for the session (tests reset() it; never mutate it)."""
    server = ReplayForgeServer(small_corpus_dir, log_dir=tmp_path_factory.mktemp("small-replay"))
    server.start()
    yield server
    server.close()


@pytest.fixture()
def fresh_replay(small_corpus_dir, tmp_path):
    """A replay forge of its own, for tests that mutate the corpus or spend the rate limit."""
    server = ReplayForgeServer(small_corpus_dir, log_dir=tmp_path / "replay-logs")
    server.start()
    yield server
    server.close()


def expected_pairs(data: dict) -> dict[str, tuple[dict, list]]:
    """number -> (issue JSON, its comments' ids in order) for a corpus/snapshot dict."""
    by_issue = comments_by_issue(data)
    return {str(i["number"]): (i, [c["id"] for c in sorted(by_issue.get(str(i["number"]), []), key=lambda c: c["id"])])
            for i in data["issues"]}


def assert_exact(pairs: list[tuple[dict, list[dict]]], data: dict) -> None:
    """The fetched (issue, comments) pairs are exactly the repo's issues, each once, with all its comments."""
    expected = expected_pairs(data)
    numbers = [str(i["number"]) for i, _ in pairs]
    assert len(numbers) == len(set(numbers)), "an issue came back twice"
    assert sorted(numbers) == sorted(expected), "issues missing or extra"
    for issue, comments in pairs:
        want_issue, want_comments = expected[str(issue["number"])]
        assert issue == want_issue
        assert [c["id"] for c in comments] == want_comments
