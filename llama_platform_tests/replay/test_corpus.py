"""Corpus file format helpers, the repos list, and normalise() over every shipped record."""

from __future__ import annotations

import gzip
import json

import pytest

from llama_platform.settings import DEFAULT_REPOS_FILE
from llama_platform.replay.corpus import CorpusError, corpus_filename, corpus_repos, load_corpus, write_repo_file
from llama_platform.sources.records import MalformedRecord, normalise, raw_row
from llama_platform.sources.repos import load_repos

from llama_platform_tests.support.replay_fixtures import comments_by_issue


def test_corpus_repos_are_partition_keys(corpus_dir):
    assert corpus_repos(corpus_dir) == sorted(
        ["github:tensorflux/tensorflux", "github:weavekit/weave", "gitee:lingyun-dev/lingyun", "gitee:tensorflux-mirror/tensorflux"]
    )


def test_repos_yaml_lists_the_shipped_corpus(corpus_dir):
    assert load_repos(DEFAULT_REPOS_FILE) == sorted(corpus_repos(corpus_dir))


def test_write_and_load_round_trip(tmp_path):
    path = write_repo_file(tmp_path, "gitee", "a-b/c.d", [{"number": "I1ABCD"}], [])
    assert path.name == "gitee__a-b__c.d.json.gz"
    assert load_corpus(tmp_path) == [{"source": "gitee", "repo": "a-b/c.d", "issues": [{"number": "I1ABCD"}], "comments": []}]
    assert corpus_repos(tmp_path) == ["gitee:a-b/c.d"]


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("github__o__r.json.gz", b"not gzip", "not a gzip'd JSON"),
        ("github__o__r.json.gz", gzip.compress(b'{"source": "github"}'), "expected keys"),
        ("github__o__x.json.gz", gzip.compress(json.dumps({"source": "github", "repo": "o/r", "issues": [], "comments": []}).encode()), "belongs in"),
    ],
)
def test_bad_corpus_files_are_clear_errors(tmp_path, name, content, match):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(CorpusError, match=match):
        load_corpus(tmp_path)


def test_bad_names_and_folders(tmp_path):
    with pytest.raises(CorpusError):
        corpus_filename("gitlab", "o/r")
    with pytest.raises(CorpusError):
        corpus_filename("github", "no-slash")
    with pytest.raises(CorpusError, match="not found"):
        load_corpus(tmp_path / "missing")


def test_normalise_every_shipped_record(corpus, manifest):
    """Well-formed records normalise; each planted malformed one raises with its expected reason."""
    for key, data in corpus.items():
        expected = {m["number"]: m for m in manifest["repos"][key]["malformed"]}
        joined = comments_by_issue(data)
        raised = {}
        for issue in data["issues"]:
            number = str(issue["number"])
            row = raw_row(data["source"], data["repo"], issue, joined.get(number, []))
            try:
                rec = normalise(row["source"], row["repo"], row["payload"], row["payload_sha256"])
            except MalformedRecord as exc:
                raised[number] = exc.reason
                continue
            assert rec.created_at.utcoffset().total_seconds() == 0 and rec.updated_at >= rec.created_at
            assert rec.is_pull_request == ("pull_request" in issue)
            assert len(rec.comments) == issue["comments"]
            if data["source"] == "gitee":  # +08:00 on the wire, UTC after normalise
                wire = issue["created_at"]
                assert wire.endswith("+08:00") and rec.created_at.isoformat() != wire
                assert (rec.created_at.hour - int(wire[11:13])) % 24 == 16
        assert raised == {n: m["normalise_reason"] for n, m in expected.items() if m["normalise_reason"]}, key
