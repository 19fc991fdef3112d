"""Ingestion on data in the shape real forges send it (older API shapes, stale counts, malformed items,
odd pages), served over HTTP by the replay forge to the real connectors: nothing is lost silently."""

from __future__ import annotations

import json

import pytest

from llama_platform.data.cleaning import clean_issues
from llama_platform.replay.forge import ReplayForgeServer
from llama_platform.sources.forge import ForgeError, PageNotFound, RepoNotFound
from llama_platform.sources.gitee import GiteeForge
from llama_platform.sources.github import GitHubForge
from llama_platform.sources.records import normalise, raw_frame
from llama_platform.sources.windows import merge_versions

from llama_platform_tests.support import wire_fixtures as W
from llama_platform_tests.support.replay_fixtures import assert_exact

SHIPPED = {"github": "weavekit/weave", "gitee": "lingyun-dev/lingyun"}


@pytest.fixture(scope="module")
def wire(tmp_path_factory):
    corpus = W.write_wire_corpus(tmp_path_factory.mktemp("wire-corpus"))
    with ReplayForgeServer(corpus, log_dir=tmp_path_factory.mktemp("wire-logs")) as server:
        yield server


def _github(server, **kw) -> GitHubForge:
    return GitHubForge(server.github_url, None, **{"backoff": 0.01, "retries": 2, **kw})


def _forge(server, source: str, **kw):
    kw = {"backoff": 0.01, "retries": 2, "per_page": 20, **kw}
    return GitHubForge(server.github_url, None, **kw) if source == "github" else GiteeForge(server.gitee_url, None, **kw)


def _rows_by_id(rows: list[dict]) -> dict[int, dict]:
    return {json.loads(r["payload"])["issue"]["id"]: r for r in rows}


def _payload(row: dict) -> dict:
    return json.loads(row["payload"])


@pytest.fixture(scope="module")
def legacy_rows(wire):
    wire.reset()
    forge = _github(wire)
    rows = list(forge.fetch_repo(W.REPO))
    return forge, rows


def test_every_item_comes_back_even_without_a_number(legacy_rows):
    _, rows = legacy_rows
    issues, _ = W.legacy_repo()
    assert sorted(_rows_by_id(rows)) == sorted(i["id"] for i in issues)
    assert len(rows) == len(issues)


def test_pull_request_decided_by_its_urls_not_by_the_key(legacy_rows):
    _, rows = legacy_rows
    by_id = _rows_by_id(rows)
    record = {n: normalise("github", W.REPO, by_id[W.ISSUE_ID_BASE + n]["payload"])
              for n in (W.LEGACY_PR_NULL, W.REAL_PR, W.ID_JOINED)}
    assert "pull_request" in _payload(by_id[W.ISSUE_ID_BASE + W.LEGACY_PR_NULL])["issue"]  # the raw key is kept
    assert not record[W.LEGACY_PR_NULL].is_pull_request
    assert not record[W.ID_JOINED].is_pull_request
    assert record[W.REAL_PR].is_pull_request


def test_comments_join_by_issue_id_when_issue_url_names_the_id(legacy_rows):
    _, rows = legacy_rows
    by_id = _rows_by_id(rows)
    joined = _payload(by_id[W.ISSUE_ID_BASE + W.ID_JOINED])["comments"]
    assert [c["id"] for c in joined] == [900_002, 900_003]  # although the issue says comments: 0
    assert [c["id"] for c in _payload(by_id[W.ISSUE_ID_BASE + W.LEGACY_PR_NULL])["comments"]] == [900_001]


def test_gitee_comments_join_by_issue_id_when_target_lacks_the_number(wire):
    forge = GiteeForge(wire.gitee_url, None, backoff=0.01, retries=2)
    pairs = {i["number"]: c for i, c in forge.fetch_issues(W.GITEE_REPO)}
    assert [c["id"] for c in pairs["I0AAA0"]] == [30_000_001]  # although the issue says comments: 0
    assert pairs["I0AAA1"] == []
    assert forge.last_report["orphan_comments"] == 0


def test_a_stale_comment_count_is_fetched_then_recorded_as_a_shortfall(legacy_rows):
    forge, rows = legacy_rows
    short = _payload(_rows_by_id(rows)[W.ISSUE_ID_BASE + W.SHORT_COUNT])
    assert [c["id"] for c in short["comments"]] == [900_004]
    report = forge.last_report
    assert report["comment_shortfall"] == {str(W.SHORT_COUNT): {"expected": 3, "attached": 1}}
    assert report["refetched_issues"] >= 1  # the per-issue endpoint was asked before giving up


def test_null_and_empty_bodies_stay_distinct_in_raw_rows(legacy_rows):
    _, rows = legacy_rows
    by_id = _rows_by_id(rows)
    assert _payload(by_id[W.ISSUE_ID_BASE + W.NULL_BODY])["issue"]["body"] is None
    assert _payload(by_id[W.ISSUE_ID_BASE + W.EMPTY_BODY])["issue"]["body"] == ""
    bodies = {c["id"]: c["body"] for c in _payload(by_id[W.ISSUE_ID_BASE + W.ID_JOINED])["comments"]}
    assert bodies[900_003] is None


def test_keyless_items_are_stored_and_quarantined_each_with_a_reason(legacy_rows):
    _, rows = legacy_rows
    # What raw_issues stores: merged by key, re-merged on a re-run (idempotent), nothing collapsed.
    stored = merge_versions(merge_versions(None, raw_frame(rows)), raw_frame(rows))
    assert len(stored) == len(rows)
    res = clean_issues(stored)
    assert len(res.cleaned) + len(res.quarantined) + len(res.filtered) == len(stored)
    reasons = sorted(res.quarantined["reason"])
    assert reasons == ["malformed:bad_timestamp", "malformed:missing_field", "malformed:missing_field"], reasons
    assert "superseded" not in set(res.filtered["reason"])
    assert set(res.filtered["reason"]) >= {"pull_request"}
    assert set(res.filtered.loc[res.filtered["reason"] == "pull_request", "number"]) == {str(W.REAL_PR)}


def test_link_urls_are_followed_as_given(wire):
    """Cursor paging with /repositories/{id}/ Link URLs and title-case headers: `page=N+1` would be refused."""
    wire.reset()
    forge = _github(wire, per_page=2)
    pairs = list(forge.fetch_issues(W.CURSOR_REPO))
    issues, comments = W.cursor_repo()
    assert sorted(i["number"] for i, _ in pairs) == [i["number"] for i in issues]
    first = next(c for i, c in pairs if i["number"] == 1)
    assert [c["id"] for c in first] == [c["id"] for c in comments]
    by_endpoint = wire.stats()["by_endpoint"]
    assert by_endpoint["github.issues.by_id"] >= 3 and by_endpoint["github.repo_comments.by_id"] >= 2
    # issue 1 says 6 comments, the forge has 5: fetched one by one (paged by cursor), then recorded
    assert by_endpoint["github.issue_comments.by_id"] >= 2
    assert forge.last_report["comment_shortfall"] == {"1": {"expected": 6, "attached": 5}}


BAD_BODIES = {"empty": "empty body", "not_json": "not JSON", "null_items": "null item"}


@pytest.mark.parametrize("source", ["github", "gitee"])
@pytest.mark.parametrize("kind", list(BAD_BODIES))
def test_bad_200_bodies_are_retried(replay, corpus, source, kind):
    repo = SHIPPED[source]
    replay.reset()
    replay.inject_fault(kind=kind, count=2, path_contains=f"/repos/{repo}/issues")
    waits: list[str] = []
    pairs = list(_forge(replay, source).fetch_issues(repo, on_wait=lambda s, r: waits.append(r)))
    assert_exact(pairs, corpus[f"{source}:{repo}"])
    assert replay.stats()["faults"][0]["fired"] == 2
    assert len(waits) == 2 and all(BAD_BODIES[kind] in r for r in waits), waits


@pytest.mark.parametrize("source", ["github", "gitee"])
@pytest.mark.parametrize("kind", list(BAD_BODIES))
def test_persistent_bad_200_bodies_are_reported_as_what_they_are(replay, source, kind):
    repo = SHIPPED[source]
    replay.reset()
    replay.inject_fault(kind=kind, count=-1, path_contains=f"/repos/{repo}/issues")
    with pytest.raises(ForgeError) as exc_info:
        list(_forge(replay, source).fetch_repo(repo))
    message = str(exc_info.value)
    assert BAD_BODIES[kind] in message and "200" in message, message
    assert "request" not in message.lower().split(":")[0], message  # not blamed on the request
    assert not isinstance(exc_info.value, RepoNotFound)
    assert replay.stats()["faults"][0]["fired"] == 3  # first try + 2 retries
    replay.reset()


def test_an_empty_comments_page_is_not_zero_comments(wire):
    wire.reset()
    wire.inject_fault(kind="empty", count=-1, path_contains=f"/repos/{W.REPO}/issues/{W.SHORT_COUNT}/comments")
    with pytest.raises(ForgeError, match="empty body"):
        list(_github(wire).fetch_repo(W.REPO))
    wire.reset()


@pytest.mark.parametrize("source", ["github", "gitee"])
def test_a_404_on_a_next_page_is_not_repo_not_found(replay, source):
    repo = SHIPPED[source]
    replay.reset()
    replay.inject_fault(status=404, count=-1, path_contains=f"/repos/{repo}/issues", params={"page": "2"})
    with pytest.raises(PageNotFound, match="page 2") as exc_info:
        list(_forge(replay, source).fetch_repo(repo))
    assert not isinstance(exc_info.value, RepoNotFound)
    assert "not found" not in str(exc_info.value).lower().split("page")[0]
    replay.reset()


@pytest.mark.parametrize("source", ["github", "gitee"])
def test_an_edited_comment_refetches_its_issue(fresh_replay, source):
    """Editing a comment does not touch its issue's updated_at: the repo-wide comments `since` pass catches it."""
    repo = SHIPPED[source]
    forge = _forge(fresh_replay, source)
    rows = list(forge.fetch_repo(repo))
    high = max(r["updated_at"] for r in rows)
    snap = fresh_replay.snapshot(source, repo)
    old_issue = min((i for i in snap["issues"] if "pull_request" not in i and i.get("comments")),
                    key=lambda i: i["updated_at"])
    number = str(old_issue["number"])
    comment = next(c for c in snap["comments"]
                   if (c["issue_url"].rsplit("/", 1)[-1] if source == "github" else str(c["target"]["issue"]["number"])) == number)
    fresh_replay.mutate(source, repo, "update_comment", id=comment["id"], body="edited: the real cause is the cache")
    new = {r["number"]: r for r in forge.fetch_repo(repo, since=high)}
    assert number in new, "the edited comment's issue was not re-fetched"
    bodies = {c["id"]: c["body"] for c in _payload(new[number])["comments"]}
    assert bodies[comment["id"]] == "edited: the real cause is the cache"
    assert forge.last_report["orphan_comments"] == 0
