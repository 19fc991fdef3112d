"""Replay forge over real HTTP: GitHub and Gitee paging, filters, headers, errors, stats, auth."""

from __future__ import annotations

import math
import re
import time
from datetime import datetime

import httpx
import pytest

from llama_platform.replay.forge import ReplayForgeServer

GH_REPO = "tensorflux/tensorflux"
GE_REPO = "lingyun-dev/lingyun"


def _ts(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def _links(header: str | None) -> dict[str, str]:
    return {rel: url for url, rel in re.findall(r'<([^>]+)>; rel="(\w+)"', header or "")}


@pytest.fixture()
def client(replay):
    with httpx.Client(base_url=replay.url, timeout=10) as c:
        yield c


def test_github_pagination_link_headers_walk_every_issue(client, replay, corpus):
    expected = corpus[f"github:{GH_REPO}"]["issues"]
    r = client.get(f"/github/repos/{GH_REPO}/issues", params={"state": "all", "per_page": 100})
    assert r.status_code == 200 and len(r.json()) == 100
    links = _links(r.headers["link"])
    assert set(links) == {"next", "last"}
    last_page = math.ceil(len(expected) / 100)
    assert links["last"].startswith(f"{replay.url}/github/") and f"page={last_page}" in links["last"]
    assert "state=all" in links["next"] and "per_page=100" in links["next"]  # other params preserved
    seen = [i["number"] for i in r.json()]
    url = links["next"]
    while url:
        r = httpx.get(url, timeout=10)
        links = _links(r.headers.get("link"))
        assert {"prev", "first"} <= set(links)
        seen += [i["number"] for i in r.json()]
        url = links.get("next")
    assert sorted(seen) == sorted(i["number"] for i in expected) and len(seen) == len(set(seen))
    assert any("pull_request" in i for i in expected)


def test_github_defaults_and_limits(client, corpus):
    r = client.get(f"/github/repos/{GH_REPO}/issues")  # defaults: state=open, created desc, 30 per page
    issues = r.json()
    assert len(issues) == 30 and {i["state"] for i in issues} == {"open"}
    created = [_ts(i["created_at"]) for i in issues if "created_at" in i]
    assert created == sorted(created, reverse=True)
    assert len(client.get(f"/github/repos/{GH_REPO}/issues", params={"per_page": 500, "state": "all"}).json()) == 100
    assert client.get(f"/github/repos/{GH_REPO}/issues", params={"page": 999, "state": "all"}).json() == []
    small = client.get(f"/github/repos/{GH_REPO}/issues", params={"per_page": 100, "state": "all", "since": "2026-09-25T00:00:00Z"})
    assert 0 < len(small.json()) < 100 and "link" not in small.headers
    assert int(r.headers["X-RateLimit-Remaining"]) > 0 and r.headers["X-RateLimit-Limit"] == "5000"


@pytest.mark.parametrize("state", ["open", "closed"])
def test_github_state_filter(client, corpus, state):
    expected = [i for i in corpus[f"github:{GH_REPO}"]["issues"] if i["state"] == state]
    got = []
    for page in range(1, 20):
        chunk = client.get(f"/github/repos/{GH_REPO}/issues", params={"state": state, "per_page": 100, "page": page}).json()
        if not chunk:
            break
        got += chunk
    assert len(got) == len(expected) > 0 and {i["state"] for i in got} == {state}


def test_github_since_and_sort(client, corpus):
    since = "2026-06-01T00:00:00Z"
    expected = [i for i in corpus[f"github:{GH_REPO}"]["issues"] if _ts(i["updated_at"]) >= _ts(since)]
    got = []
    for page in range(1, 20):
        params = {"state": "all", "since": since, "sort": "updated", "direction": "asc", "per_page": 100, "page": page}
        chunk = client.get(f"/github/repos/{GH_REPO}/issues", params=params).json()
        got += chunk
        if len(chunk) < 100:
            break
    assert [i["number"] for i in got] == [i["number"] for i in sorted(expected, key=lambda i: (_ts(i["updated_at"]), i["id"]))]


def test_github_comments_endpoints(client, corpus):
    data = corpus[f"github:{GH_REPO}"]
    r = client.get(f"/github/repos/{GH_REPO}/issues/comments", params={"per_page": 100})
    first = r.json()
    assert [c["id"] for c in first] == sorted(c["id"] for c in data["comments"])[:100]  # default: created asc
    assert f"page={math.ceil(len(data['comments']) / 100)}" in _links(r.headers["link"])["last"]
    since = "2026-09-01T00:00:00Z"
    recent = client.get(f"/github/repos/{GH_REPO}/issues/comments", params={"since": since, "per_page": 100}).json()
    assert recent and all(_ts(c["updated_at"]) >= _ts(since) for c in recent)
    issue = next(i for i in data["issues"] if i["comments"] >= 3)
    per_issue = client.get(f"/github/repos/{GH_REPO}/issues/{issue['number']}/comments").json()
    assert len(per_issue) == issue["comments"]
    assert all(c["issue_url"].endswith(f"/issues/{issue['number']}") for c in per_issue)


def test_gitee_pages_and_headers(client, corpus):
    data = corpus[f"gitee:{GE_REPO}"]
    r = client.get(f"/gitee/api/v5/repos/{GE_REPO}/issues", params={"state": "all", "per_page": 100})
    assert r.headers["total_count"] == str(len(data["issues"]))
    assert r.headers["total_page"] == str(math.ceil(len(data["issues"]) / 100))
    seen = []
    for page in range(1, int(r.headers["total_page"]) + 1):
        seen += client.get(f"/gitee/api/v5/repos/{GE_REPO}/issues", params={"state": "all", "per_page": 100, "page": page}).json()
    assert sorted(i["number"] for i in seen) == sorted(i["number"] for i in data["issues"])
    default = client.get(f"/gitee/api/v5/repos/{GE_REPO}/issues")  # state=open, 20 per page
    assert len(default.json()) == 20 and {i["state"] for i in default.json()} == {"open"}
    comments = client.get(f"/gitee/api/v5/repos/{GE_REPO}/issues/comments", params={"per_page": 100})
    assert comments.headers["total_count"] == str(len(data["comments"]))


@pytest.mark.parametrize("state", ["open", "progressing", "closed", "rejected"])
def test_gitee_state_filter(client, corpus, state):
    expected = sum(i["state"] == state for i in corpus[f"gitee:{GE_REPO}"]["issues"])
    r = client.get(f"/gitee/api/v5/repos/{GE_REPO}/issues", params={"state": state, "per_page": 100})
    assert r.headers["total_count"] == str(expected) and expected > 0


def test_gitee_since_takes_plus_0800(client, corpus):
    data = corpus[f"gitee:{GE_REPO}"]
    since = "2026-06-01T08:00:00+08:00"
    expected = sum(_ts(i["updated_at"]) >= _ts(since) for i in data["issues"])
    r = client.get(f"/gitee/api/v5/repos/{GE_REPO}/issues", params={"state": "all", "since": since})
    assert r.headers["total_count"] == str(expected)
    issue = next(i for i in data["issues"] if i["comments"] >= 2)
    per_issue = client.get(f"/gitee/api/v5/repos/{GE_REPO}/issues/{issue['number']}/comments").json()
    assert [c["target"]["issue"]["number"] for c in per_issue] == [issue["number"]] * issue["comments"]


def test_errors_look_like_the_forges(client):
    r = client.get("/github/repos/nobody/nothing/issues")
    assert r.status_code == 404 and r.json()["message"] == "Not Found"
    assert client.get("/gitee/api/v5/repos/nobody/nothing/issues").status_code == 404
    assert client.get(f"/github/repos/{GH_REPO}/issues/999999/comments").status_code == 404
    assert client.get(f"/github/repos/{GH_REPO}/issues", params={"state": "merged"}).status_code == 422
    assert client.get(f"/gitee/api/v5/repos/{GE_REPO}/issues", params={"since": "yesterday"}).status_code == 422
    assert client.get(f"/github/repos/{GH_REPO}").json()["full_name"] == GH_REPO


def test_stats_count_requests_and_faults(client, replay):
    replay.reset()
    client.get(f"/github/repos/{GH_REPO}/issues")
    client.get(f"/github/repos/{GH_REPO}/issues")
    client.get(f"/gitee/api/v5/repos/{GE_REPO}/issues/comments")
    replay.inject_fault(503, count=1, path_contains="/issues/comments")
    assert client.get(f"/github/repos/{GH_REPO}/issues/comments").status_code == 503
    assert client.get(f"/github/repos/{GH_REPO}/issues/comments").status_code == 200
    stats = replay.stats()
    assert stats["by_endpoint"] == {"github.issues": 2, "gitee.repo_comments": 1, "github.repo_comments": 2}
    assert stats["total"] == 5 and stats["by_status"] == {"200": 4, "503": 1}
    replay.reset()
    assert replay.stats()["total"] == 0


def test_require_token(corpus_dir, tmp_path):
    token = "replay-secret-7f3a"
    with ReplayForgeServer(corpus_dir, log_dir=tmp_path, require_token=token) as srv:
        gh = f"{srv.github_url}/repos/{GH_REPO}/issues"
        ge = f"{srv.gitee_url}/repos/{GE_REPO}/issues"
        assert httpx.get(gh).status_code == 401
        wrong = httpx.get(gh, headers={"Authorization": "token nope"})
        assert wrong.status_code == 401 and "nope" not in wrong.text
        assert httpx.get(gh, headers={"Authorization": f"token {token}"}).status_code == 200
        assert httpx.get(gh, headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert httpx.get(ge).status_code == 401
        assert httpx.get(ge, params={"access_token": "nope"}).status_code == 401
        assert httpx.get(ge, params={"access_token": token}).status_code == 200
        token_file = next(tmp_path.glob("replay-token-*"))
        assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    assert not list(tmp_path.glob("replay-token-*"))  # removed on stop
    logs = "".join(p.read_text() for p in tmp_path.glob("*.log"))
    assert token not in logs


def test_github_etag_and_free_304(client, replay):
    replay.reset()
    url = f"/github/repos/{GH_REPO}/issues"
    r = client.get(url, params={"state": "all", "per_page": 5})
    etag = r.headers["etag"]
    assert etag.startswith('W/"') and int(r.headers["x-ratelimit-remaining"]) == 4999
    again = client.get(url, params={"state": "all", "per_page": 5}, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert again.headers["x-ratelimit-remaining"] == "4999"  # not charged
    other_page = client.get(url, params={"state": "all", "per_page": 5, "page": 2}, headers={"If-None-Match": etag})
    assert other_page.status_code == 200 and other_page.headers["etag"] != etag
    assert "etag" not in client.get(f"/gitee/api/v5/repos/{GE_REPO}/issues").headers  # Gitee has none
    stats = replay.stats()
    assert stats["not_modified"] == {"github.issues": 1} and stats["by_status"]["304"] == 1
    assert stats["rate_limit"]["remaining"] == 4998


@pytest.mark.parametrize("status", [403, 429])
def test_rate_limit_budget_exhaustion_and_reset(fresh_replay, status):
    url = f"{fresh_replay.github_url}/repos/weavekit/weave/issues"
    fresh_replay.set_rate_limit(remaining=2, reset_in=1, limit=10, status=status)
    ok = [httpx.get(url) for _ in range(2)]
    assert [r.status_code for r in ok] == [200, 200] and ok[1].headers["x-ratelimit-remaining"] == "0"
    assert ok[1].headers["x-ratelimit-used"] == "10" and ok[1].headers["x-ratelimit-resource"] == "core"
    spent = httpx.get(url)
    assert spent.status_code == status and spent.headers["x-ratelimit-remaining"] == "0"
    assert spent.json()["message"].startswith("API rate limit exceeded")
    assert int(spent.headers["x-ratelimit-reset"]) >= time.time()
    time.sleep(max(int(spent.headers["x-ratelimit-reset"]) - time.time(), 0) + 0.2)
    fresh = httpx.get(url)
    assert fresh.status_code == 200 and fresh.headers["x-ratelimit-remaining"] == "9"


def test_fault_kinds_over_http(client, replay):
    replay.reset()
    url = f"/github/repos/{GH_REPO}/issues"
    replay.inject_fault(kind="reset", count=1, path_contains="/issues")
    with pytest.raises(httpx.TransportError):
        client.get(url)
    replay.inject_fault(kind="truncate", count=1, path_contains="/issues")
    cut = client.get(url)
    assert cut.status_code == 200 and cut.content.startswith(b"[")
    with pytest.raises(ValueError):
        cut.json()
    replay.inject_fault(kind="slow", delay=1.0, count=1, path_contains="/issues")
    start = time.monotonic()
    assert client.get(url).status_code == 200 and time.monotonic() - start >= 1.0
    replay.inject_fault(kind="secondary_limit", retry_after=7, count=1, path_contains="/issues")
    limited = client.get(url)
    assert limited.status_code == 403 and limited.headers["retry-after"] == "7"
    assert "secondary rate limit" in limited.json()["message"]
    replay.inject_fault(kind="too_many_requests", count=1, path_contains="/gitee/")
    assert client.get(f"/gitee/api/v5/repos/{GE_REPO}/issues").status_code == 429
    # params + skip select one page; count -1 lasts until cleared
    replay.inject_fault(500, count=-1, path_contains="/issues", params={"page": "3"}, skip=1)
    assert client.get(url, params={"page": 3}).status_code == 200  # skipped once
    assert [client.get(url, params={"page": 3}).status_code for _ in range(3)] == [500] * 3
    assert client.get(url, params={"page": 2}).status_code == 200
    replay.clear_faults()
    assert client.get(url, params={"page": 3}).status_code == 200
    assert replay.stats()["by_status"]["reset"] == 1
    with pytest.raises(ValueError, match="kind"):
        replay.inject_fault(kind="meteor")
    replay.reset()


def test_mutations_bump_updated_at(fresh_replay):
    gh = fresh_replay.github_url
    before = fresh_replay.snapshot("github", GH_REPO)
    newest = max(_ts(i["updated_at"]) for i in before["issues"])
    comment = fresh_replay.mutate("github", GH_REPO, "add_comment", number=1, body="hello")
    issue = next(i for i in fresh_replay.snapshot("github", GH_REPO)["issues"] if i["number"] == 1)
    assert issue["updated_at"] == comment["updated_at"] and _ts(issue["updated_at"]) > newest
    assert issue["comments"] == next(i for i in before["issues"] if i["number"] == 1)["comments"] + 1
    added = fresh_replay.mutate("github", GH_REPO, "add_issue", fields={"title": "brand new"})
    assert added["number"] == max(i["number"] for i in before["issues"]) + 1
    edited = fresh_replay.mutate("github", GH_REPO, "update_comment", id=comment["id"], body="edited")
    assert _ts(edited["updated_at"]) > _ts(comment["updated_at"])
    since = httpx.get(f"{gh}/repos/{GH_REPO}/issues",
                      params={"state": "all", "since": comment["updated_at"], "sort": "updated", "direction": "asc"}).json()
    assert [i["number"] for i in since] == [1, added["number"]]
    recent = httpx.get(f"{gh}/repos/{GH_REPO}/issues/comments", params={"since": comment["updated_at"]}).json()
    assert [c["body"] for c in recent] == ["edited"]
    gitee = fresh_replay.mutate("gitee", GE_REPO, "add_issue")
    assert gitee["updated_at"].endswith("+08:00") and isinstance(gitee["number"], str)
    with pytest.raises(ValueError, match="no issue"):
        fresh_replay.mutate("github", GH_REPO, "update_issue", number=999999, fields={})
