"""The real PyGithub and httpx connectors against the replay forge over HTTP."""

from __future__ import annotations

import json
import logging
import math
import time
import traceback
from datetime import datetime, timezone

import pytest

from llama_platform.sources.forge import ForgeAuthError, ForgeError, RepoNotFound
from llama_platform.sources.gitee import GiteeForge
from llama_platform.sources.github import GitHubForge
from llama_platform.sources.records import normalise, parse_ts
from llama_platform.replay.forge import ReplayForgeServer

from llama_platform_tests.support.replay_fixtures import comments_by_issue

SINCE = datetime(2026, 6, 1, tzinfo=timezone.utc)


def _forge(replay, source: str, **kw):
    return GitHubForge(replay.github_url, None, **kw) if source == "github" else GiteeForge(replay.gitee_url, None, **kw)


def _check_full_fetch(rows, data):
    expected_comments = comments_by_issue(data)
    numbers = [r["number"] for r in rows]
    assert sorted(numbers) == sorted(str(i["number"]) for i in data["issues"])
    assert len(numbers) == len(set(numbers)), "an issue came back twice"
    wire = {str(i["number"]): i for i in data["issues"]}
    for row in rows:
        payload = json.loads(row["payload"])
        assert payload["issue"] == wire[row["number"]]  # lossless
        assert [c["id"] for c in payload["comments"]] == [c["id"] for c in expected_comments.get(row["number"], [])]
        assert row["source"] == data["source"] and row["repo"] == data["repo"]


@pytest.mark.parametrize(
    "key, per_page",
    [("github:tensorflux/tensorflux", 100), ("github:weavekit/weave", 37), ("gitee:lingyun-dev/lingyun", 100),
     ("gitee:tensorflux-mirror/tensorflux", 45)],
)
def test_full_fetch_is_complete_and_costs_one_pass_each(replay, corpus, key, per_page):
    data = corpus[key]
    source, repo = key.split(":")
    replay.reset()
    rows = list(_forge(replay, source, per_page=per_page).fetch_repo(repo))
    _check_full_fetch(rows, data)
    stats = replay.stats()["by_endpoint"]
    # No repo-metadata call (PyGithub runs lazy) and no per-issue comment calls.
    assert stats == {
        f"{source}.issues": math.ceil(len(data["issues"]) / per_page),
        f"{source}.repo_comments": math.ceil(len(data["comments"]) / per_page),
    }


def test_github_rows_flag_pull_requests(replay, corpus):
    rows = list(GitHubForge(replay.github_url, None).fetch_repo("weavekit/weave"))
    flagged = {r["number"] for r in rows if '"pull_request":' in r["payload"]}
    wire_prs = {str(i["number"]) for i in corpus["github:weavekit/weave"]["issues"] if "pull_request" in i}
    assert flagged == wire_prs and wire_prs
    rec = normalise("github", "weavekit/weave", next(r for r in rows if r["number"] in wire_prs)["payload"])
    assert rec.is_pull_request


def test_gitee_rows_normalise_to_utc(replay, corpus):
    rows = list(GiteeForge(replay.gitee_url, None).fetch_repo("lingyun-dev/lingyun"))
    wire = {i["number"]: i for i in corpus["gitee:lingyun-dev/lingyun"]["issues"]}
    checked = 0
    for row in rows:
        issue = wire[row["number"]]
        assert row["updated_at"].utcoffset().total_seconds() == 0
        assert row["updated_at"] == datetime.fromisoformat(issue["updated_at"]).astimezone(timezone.utc)
        if "created_at" in issue and isinstance(issue["title"], str) and issue["state"] != "deleted" and isinstance(issue["body"], (str, type(None))):
            rec = normalise("gitee", "lingyun-dev/lingyun", row["payload"])
            assert rec.created_at.tzinfo == timezone.utc
            assert rec.created_at == parse_ts(issue["created_at"], "created_at")
            assert rec.created_at.strftime("%H") != issue["created_at"][11:13]  # shifted by 8 h
            checked += 1
    assert checked > 300


@pytest.mark.parametrize("key", ["github:tensorflux/tensorflux", "gitee:lingyun-dev/lingyun"])
def test_incremental_fetch_since(replay, corpus, key):
    """Only issues updated since; each still has *all* its comments (older ones fetched per issue)."""
    data = corpus[key]
    source, repo = key.split(":")

    def updated(x):
        return datetime.fromisoformat(x["updated_at"].replace("Z", "+00:00"))

    recent = [i for i in data["issues"] if updated(i) >= SINCE]
    recent_comments = comments_by_issue({**data, "comments": [c for c in data["comments"] if updated(c) >= SINCE]})
    refetch = sum(i["comments"] > len(recent_comments.get(str(i["number"]), [])) for i in recent)
    replay.reset()
    rows = list(_forge(replay, source).fetch_repo(repo, since=SINCE))
    assert sorted(r["number"] for r in rows) == sorted(str(i["number"]) for i in recent)
    all_comments = comments_by_issue(data)
    for row in rows:
        got = [c["id"] for c in json.loads(row["payload"])["comments"]]
        assert got == [c["id"] for c in all_comments.get(row["number"], [])]
    stats = replay.stats()["by_endpoint"]
    assert stats[f"{source}.issues"] == math.ceil(len(recent) / 100)
    assert stats.get(f"{source}.issue_comments", 0) == refetch > 0


@pytest.mark.parametrize("source", ["github", "gitee"])
def test_transient_5xx_are_retried(replay, corpus, source):
    repo = "weavekit/weave" if source == "github" else "tensorflux-mirror/tensorflux"
    replay.reset()
    replay.inject_fault(502, count=2, path_contains="/issues")
    rows = list(_forge(replay, source, backoff=0.05).fetch_repo(repo))
    assert len(rows) == len(corpus[f"{source}:{repo}"]["issues"])
    assert replay.stats()["by_status"]["502"] == 2


@pytest.mark.parametrize("source", ["github", "gitee"])
def test_persistent_5xx_fail_within_bounded_time(replay, source):
    repo = "weavekit/weave" if source == "github" else "tensorflux-mirror/tensorflux"
    replay.reset()
    replay.inject_fault(500, count=100, path_contains="/issues")
    start = time.monotonic()
    with pytest.raises(ForgeError):
        list(_forge(replay, source, retries=2, backoff=0.05).fetch_repo(repo))
    assert time.monotonic() - start < 15
    replay.reset()


@pytest.mark.parametrize("source", ["github", "gitee"])
def test_unknown_repo(replay, source):
    with pytest.raises(RepoNotFound) as exc_info:
        list(_forge(replay, source).fetch_repo("nobody/nothing"))
    assert exc_info.value.status == 404
    with pytest.raises(ValueError, match="owner/name"):
        list(_forge(replay, source).fetch_repo("../etc/passwd"))


def test_tokens_never_leak(corpus_dir, tmp_path, caplog):
    good = "ghp_RightTokenValue0000000000000000000000"
    bad = "ghp_WrongTokenValue1111111111111111111111"
    caplog.set_level(logging.DEBUG)  # everything: urllib3, httpx, httpcore, PyGithub, ours
    with ReplayForgeServer(corpus_dir, log_dir=tmp_path, require_token=good) as srv:
        failures = []
        for forge, repo in [(GitHubForge(srv.github_url, bad), "weavekit/weave"), (GiteeForge(srv.gitee_url, bad), "lingyun-dev/lingyun")]:
            with pytest.raises(ForgeAuthError) as exc_info:
                list(forge.fetch_repo(repo))
            assert exc_info.value.status == 401
            failures.append("".join(traceback.format_exception(exc_info.value)) + repr(exc_info.value))
        # The right token works, and even successful requests never log it (Gitee sends it in the URL).
        assert len(list(GiteeForge(srv.gitee_url, good).fetch_repo("tensorflux-mirror/tensorflux"))) > 0
        assert len(list(GitHubForge(srv.github_url, good).fetch_repo("weavekit/weave"))) > 0
    assert "HTTP Request: GET" in caplog.text  # httpx did log its requests
    server_logs = "".join(p.read_text() for p in tmp_path.glob("*.log"))
    for text in [caplog.text, server_logs, *failures]:
        assert good not in text and bad not in text


def test_github_enterprise_base_url(replay, corpus):
    """`https://HOST/api/v3`: PyGithub follows the forge's absolute Link URLs under that prefix."""
    replay.reset()
    rows = list(GitHubForge(replay.enterprise_url, None, per_page=50).fetch_repo("weavekit/weave"))
    _check_full_fetch(rows, corpus["github:weavekit/weave"])
    assert replay.stats()["by_endpoint"]["github.issues"] == math.ceil(540 / 50)


def _rsa_pair() -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def test_github_app_auth(corpus_dir, corpus, tmp_path, caplog):
    """App id + private key + installation id: PyGithub signs a JWT, trades it for an installation
    token, and the fetch runs on that token; a wrong key is refused; the key never shows."""
    caplog.set_level(logging.DEBUG)
    private, public = _rsa_pair()
    other_private, _ = _rsa_pair()
    with ReplayForgeServer(corpus_dir, log_dir=tmp_path, github_app=("4242", public)) as srv:
        with pytest.raises(ForgeAuthError):  # no credentials at all
            list(GitHubForge(srv.github_url, None).fetch_repo("weavekit/weave"))
        forge = GitHubForge(srv.github_url, app_id=4242, app_private_key=private, installation_id=7)
        rows = list(forge.fetch_repo("weavekit/weave"))
        _check_full_fetch(rows, corpus["github:weavekit/weave"])
        assert srv.stats()["by_endpoint"]["github.app_token"] == 1  # one token, reused for every page
        with pytest.raises(ForgeAuthError) as exc_info:
            list(GitHubForge(srv.github_url, app_id=4242, app_private_key=other_private, installation_id=7)
                 .fetch_repo("weavekit/weave"))
        text = "".join(traceback.format_exception(exc_info.value))
    with pytest.raises(ValueError, match="installation_id"):
        GitHubForge("http://127.0.0.1:1/github", app_id=1, app_private_key=private)
    marker = private.splitlines()[1]
    assert marker not in caplog.text and marker not in text


def test_github_poll_costs_one_free_request_when_nothing_changed(fresh_replay):
    forge = GitHubForge(fresh_replay.github_url, None)
    first = forge.poll("weavekit/weave")
    assert first.changed and first.etag and first.requests == 1
    budget = fresh_replay.stats()["rate_limit"]["remaining"]
    fresh_replay.reset()
    fresh_replay.set_rate_limit(remaining=budget)
    again = forge.poll("weavekit/weave", first.etag)
    assert again == type(first)(changed=False, etag=first.etag, requests=1)
    stats = fresh_replay.stats()
    assert stats["total"] == 1 and stats["not_modified"] == {"github.issues": 1}
    assert stats["rate_limit"]["remaining"] == budget  # a 304 is free
    fresh_replay.mutate("github", "weavekit/weave", "add_comment", number=1, body="news")
    changed = forge.poll("weavekit/weave", first.etag)
    assert changed.changed and changed.etag != first.etag
    assert not forge.poll("weavekit/weave", changed.etag).changed


def test_gitee_poll_with_an_updated_at_cursor(fresh_replay):
    forge = GiteeForge(fresh_replay.gitee_url, None)
    first = forge.poll("lingyun-dev/lingyun")
    assert first.changed and first.requests == 1
    fresh_replay.reset()
    assert forge.poll("lingyun-dev/lingyun", first.etag) == type(first)(changed=False, etag=first.etag, requests=1)
    assert fresh_replay.stats()["total"] == 1
    issue = fresh_replay.mutate("gitee", "lingyun-dev/lingyun", "add_comment",
                                number=fresh_replay.snapshot("gitee", "lingyun-dev/lingyun")["issues"][0]["number"])
    changed = forge.poll("lingyun-dev/lingyun", first.etag)
    assert changed.changed and parse_ts(changed.etag, "etag") == parse_ts(issue["updated_at"], "updated_at")
    with pytest.raises(ValueError, match="ISO 8601"):
        forge.poll("lingyun-dev/lingyun", "not-a-time")


def test_incremental_refresh_costs_what_changed(fresh_replay):
    """After a full fetch, a refresh since the newest updated_at costs requests for the changes only."""
    forge = GitHubForge(fresh_replay.github_url, None)
    rows = list(forge.fetch_repo("weavekit/weave"))
    high = max(r["updated_at"] for r in rows)
    fresh_replay.mutate("github", "weavekit/weave", "add_comment", number=2, body="one more")
    fresh_replay.mutate("github", "weavekit/weave", "add_issue", fields={"title": "fresh"})
    fresh_replay.reset()
    new = list(forge.fetch_repo("weavekit/weave", since=high))
    # `since` is inclusive: the issue(s) last updated at `high` come back too
    assert {r["number"] for r in new} >= {"2"} and len(new) <= 4
    stats = fresh_replay.stats()["by_endpoint"]
    # one page of issues, one of comments, and the older comments of issue 2 (and of the issue at `high`)
    assert stats["github.issues"] == 1 and stats["github.repo_comments"] == 1
    assert 1 <= stats["github.issue_comments"] <= 2
    two = next(r for r in new if r["number"] == "2")
    assert json.loads(two["payload"])["comments"][-1]["body"] == "one more"
