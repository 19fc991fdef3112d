"""Every fault the replay forge can inject, against the real connectors over HTTP: each run ends with
exactly the repo's records, every wait is reported, and tokens never leak."""

from __future__ import annotations

import logging
import time
import traceback

import pytest

from llama_platform.sources.forge import ForgeError, RateLimitExhausted
from llama_platform.sources.gitee import GiteeForge
from llama_platform.sources.github import GitHubForge
from llama_platform.replay.forge import ReplayForgeServer

from llama_platform_tests.support.replay_fixtures import assert_exact

REPOS = {"github": "weavekit/weave", "gitee": "lingyun-dev/lingyun"}
TOKEN = "ghp_FaultTestToken0123456789abcdefghijklmn"


def _forge(server, source: str, token: str | None = None, **kw):
    kw = {"backoff": 0.01, "per_page": 20, **kw}
    if source == "github":
        return GitHubForge(server.github_url, token, **kw)
    return GiteeForge(server.gitee_url, token, **kw)


# (fault kwargs for inject_fault, what the connector reports while waiting)
FAULTS = {
    "5xx_burst": ({"kind": "status", "status": 502, "count": 3}, "HTTP 502"),
    "503_on_page_2": ({"kind": "status", "status": 503, "count": 2, "params": {"page": "2"}}, "HTTP 503"),
    "secondary_limit": ({"kind": "secondary_limit", "count": 1, "retry_after": 1}, "secondary rate limit"),
    "too_many_requests": ({"kind": "too_many_requests", "count": 1, "retry_after": 1}, "HTTP 429"),
    "connection_reset": ({"kind": "reset", "count": 2}, ""),
    "truncated_json": ({"kind": "truncate", "count": 2}, "invalid JSON body"),
    "slow_response": ({"kind": "slow", "count": 1, "delay": 3.0}, ""),
}


@pytest.mark.parametrize("source", ["github", "gitee"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_ends_with_the_exact_record_set(replay, corpus, source, fault):
    spec, reason = FAULTS[fault]
    repo = REPOS[source]
    replay.reset()
    replay.inject_fault(path_contains=f"/repos/{repo}/issues", **spec)
    waits: list[tuple[float, str]] = []
    # timeout 1 s: the slow response (3 s) times out and is retried
    pairs = list(_forge(replay, source, timeout=1).fetch_issues(repo, on_wait=lambda s, r: waits.append((s, r))))
    assert_exact(pairs, corpus[f"{source}:{repo}"])
    stats = replay.stats()
    assert stats["faults"][0]["fired"] == spec["count"]  # the fault really happened
    assert len(waits) == spec["count"], waits  # one reported wait per failed attempt
    assert all(reason in r for _, r in waits), waits
    if spec["kind"] in ("secondary_limit", "too_many_requests"):
        assert all(s == spec["retry_after"] for s, _ in waits)  # waited what the forge asked


@pytest.mark.parametrize("source", ["github", "gitee"])
def test_persistent_fault_fails_clearly_and_in_bounded_time(replay, source):
    repo = REPOS[source]
    replay.reset()
    replay.inject_fault(kind="truncate", count=-1, path_contains=f"/repos/{repo}/issues")
    start = time.monotonic()
    with pytest.raises(ForgeError, match="invalid JSON body") as exc_info:
        list(_forge(replay, source, retries=2).fetch_repo(repo))
    assert time.monotonic() - start < 10
    assert not isinstance(exc_info.value, RateLimitExhausted)
    assert replay.stats()["faults"][0]["fired"] == 3  # first try + 2 retries
    replay.reset()


def test_primary_rate_limit_waits_for_a_near_reset(fresh_replay, small_corpus_dir):
    """Budget spent, reset in 2 s: the connector waits (reported), then completes exactly."""
    from llama_platform.replay.corpus import load_corpus

    data = next(d for d in load_corpus(small_corpus_dir) if d["repo"] == "weavekit/weave")
    fresh_replay.set_rate_limit(remaining=3, reset_in=2)
    waits: list[tuple[float, str]] = []
    pairs = list(GitHubForge(fresh_replay.github_url, None, per_page=10, backoff=0.01).fetch_issues(
        "weavekit/weave", on_wait=lambda s, r: waits.append((s, r))))
    assert_exact(pairs, data)
    assert waits and all("rate limit" in r for _, r in waits), waits
    assert all(0 < s <= 5 for s, _ in waits)
    # The connector saw "remaining: 0" on the third answer and waited instead of spending a 403.
    assert fresh_replay.stats()["by_status"].get("403", 0) == 0


@pytest.mark.parametrize("status", [403, 429])
def test_primary_rate_limit_far_reset_raises_with_the_reset_time(fresh_replay, status, caplog):
    caplog.set_level(logging.DEBUG)
    fresh_replay.set_rate_limit(remaining=0, reset_in=3000, status=status)
    forge = GitHubForge(fresh_replay.github_url, None, max_wait=60)
    start = time.monotonic()
    with pytest.raises(RateLimitExhausted) as exc_info:
        list(forge.fetch_repo("weavekit/weave"))
    assert time.monotonic() - start < 5  # no hour-long sleep
    err = exc_info.value
    assert err.status == status and 2990 <= err.wait <= 3010
    reset = fresh_replay.stats()["rate_limit"]["reset"]
    assert abs(err.reset_at.timestamp() - reset) <= 2
    assert err.reset_at.strftime("%Y-%m-%dT%H:%M") in str(err) and "rate limit" in str(err)


def test_secondary_limit_longer_than_max_wait_raises(replay):
    replay.reset()
    replay.inject_fault(kind="secondary_limit", count=1, retry_after=120, path_contains="/repos/weavekit/weave/")
    with pytest.raises(RateLimitExhausted, match="secondary rate limit") as exc_info:
        list(GitHubForge(replay.github_url, None, max_wait=30).fetch_repo("weavekit/weave"))
    assert exc_info.value.wait == 120
    replay.reset()


@pytest.mark.parametrize("source", ["github", "gitee"])
def test_tokens_never_leak_through_faults(corpus_dir, tmp_path, caplog, source):
    """Truncated JSON, resets, 5xx and rate-limit errors, with a token set: nothing shows it."""
    caplog.set_level(logging.DEBUG)  # everything: urllib3, requests, httpx, httpcore, PyGithub, ours
    repo = REPOS[source]
    texts = []
    waits: list[str] = []
    with ReplayForgeServer(corpus_dir, log_dir=tmp_path, require_token=TOKEN) as srv:
        forge = _forge(srv, source, TOKEN, retries=1, max_wait=5)
        for spec in ({"kind": "truncate"}, {"kind": "reset"}, {"kind": "status", "status": 500}):
            srv.reset()
            srv.inject_fault(count=-1, path_contains=f"/repos/{repo}/issues", **spec)
            with pytest.raises(ForgeError) as exc_info:
                list(forge.fetch_repo(repo, on_wait=lambda s, r: waits.append(r)))
            texts.append("".join(traceback.format_exception(exc_info.value)) + repr(exc_info.value))
        srv.reset()
        if source == "github":
            srv.set_rate_limit(remaining=0, reset_in=3000)
            with pytest.raises(RateLimitExhausted) as exc_info:
                list(forge.fetch_repo(repo))
            texts.append("".join(traceback.format_exception(exc_info.value)) + repr(exc_info.value))
            srv.reset()
        assert forge.poll(repo).changed  # and a clean poll works with the token
    server_logs = "".join(p.read_text() for p in tmp_path.glob("*.log"))
    for text in [caplog.text, server_logs, *texts, *waits]:
        assert TOKEN not in text
