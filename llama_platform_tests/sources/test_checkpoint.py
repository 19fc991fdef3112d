"""Resumable, exactly-once fetches: killed mid-pagination (by a fault, by SIGKILL), resumed from the
checkpoint, ending with neither gaps nor duplicates; also when the forge changes in between."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llama_platform.sources.checkpoint import CheckpointMismatch, FetchCheckpoint
from llama_platform.replay.corpus import load_corpus
from llama_platform.sources.forge import ForgeError
from llama_platform.sources.gitee import GiteeForge
from llama_platform.sources.github import GitHubForge

from llama_platform_tests.support.replay_fixtures import assert_exact

REPOS = {"github": "tensorflux/tensorflux", "gitee": "lingyun-dev/lingyun"}
PER_PAGE = 10


def _forge(server, source: str, **kw):
    kw = {"backoff": 0.01, "per_page": PER_PAGE, "retries": 1, **kw}
    return GitHubForge(server.github_url, None, **kw) if source == "github" else GiteeForge(server.gitee_url, None, **kw)


def _data(small_corpus_dir, source: str) -> dict:
    return next(d for d in load_corpus(small_corpus_dir) if d["source"] == source and d["repo"] == REPOS[source])


def _list_params(source: str, kind: str) -> tuple[str, dict]:
    """path_contains + params that match one list endpoint's requests (not the other list's)."""
    repo = REPOS[source]
    if kind == "comments":
        return f"/repos/{repo}/issues/comments", {}
    return f"/repos/{repo}/issues", {"state": "all"}


@pytest.mark.parametrize("source", ["github", "gitee"])
@pytest.mark.parametrize("kind", ["comments", "issues"])
def test_page_3_fails_then_resume_from_checkpoint(small_replay, small_corpus_dir, tmp_path, source, kind):
    data = _data(small_corpus_dir, source)
    srv = small_replay
    srv.reset()
    path, params = _list_params(source, kind)
    srv.inject_fault(500, count=-1, path_contains=path, params={**params, "page": "3"})
    cp_dir = tmp_path / "cp"
    got_first = []
    with pytest.raises(ForgeError):
        for pair in _forge(srv, source).fetch_issues(REPOS[source], checkpoint=cp_dir):
            got_first.append(pair)
    state = json.loads((cp_dir / "state.json").read_text())
    assert state["phase"] == kind and state["pages"][kind] == 2  # two pages of this pass completed
    if kind == "issues":
        assert len(got_first) == 2 * PER_PAGE  # rows of completed pages were already handed out

    srv.clear_faults()
    srv.reset()
    pairs = list(_forge(srv, source).fetch_issues(REPOS[source], checkpoint=cp_dir))
    assert_exact(pairs, data)  # the resumed run yields everything: spooled pages + the rest
    by_endpoint = srv.stats()["by_endpoint"]
    n_comment_pages = math.ceil(len(data["comments"]) / PER_PAGE)
    n_issue_pages = math.ceil(len(data["issues"]) / PER_PAGE)
    done = 2  # pages of the interrupted pass not fetched again...
    overlap = 1  # ...but the keyset restart re-reads at most one page's worth
    if kind == "comments":
        assert by_endpoint[f"{source}.repo_comments"] <= n_comment_pages - done + overlap
        assert by_endpoint[f"{source}.issues"] == n_issue_pages
    else:
        assert f"{source}.repo_comments" not in by_endpoint  # the comments pass was complete
        assert by_endpoint[f"{source}.issues"] <= n_issue_pages - done + overlap
    assert json.loads((cp_dir / "state.json").read_text())["phase"] == "done"

    # Idempotent: a finished checkpoint replays its rows without a single request.
    srv.reset()
    again = list(_forge(srv, source).fetch_issues(REPOS[source], checkpoint=cp_dir))
    assert again == pairs and srv.stats()["total"] == 0


def test_resume_after_the_forge_changed(fresh_replay, tmp_path):
    """Between the kill and the retry, issues already fetched and not yet fetched change, one is added:
    the resumed run has every issue's latest version, and no (number, updated_at) twice."""
    source, repo = "github", REPOS["github"]
    path, params = _list_params(source, "issues")
    fresh_replay.inject_fault(500, count=-1, path_contains=path, params={**params, "page": "4"})
    cp = FetchCheckpoint()  # in memory: a retry within one process
    first = []
    with pytest.raises(ForgeError):
        for pair in _forge(fresh_replay, source).fetch_issues(repo, checkpoint=cp):
            first.append(pair)
    fetched = [str(i["number"]) for i, _ in first]
    fresh_replay.clear_faults()
    fresh_replay.mutate(source, repo, "update_issue", number=int(fetched[3]), fields={"title": "edited"})
    fresh_replay.mutate(source, repo, "add_comment", number=int(fetched[5]), body="late comment")
    fresh_replay.mutate(source, repo, "add_issue", fields={"title": "brand new"})

    pairs = list(_forge(fresh_replay, source).fetch_issues(repo, checkpoint=cp))
    keys = [(str(i["number"]), i["updated_at"]) for i, _ in pairs]
    assert len(keys) == len(set(keys)), "a (number, updated_at) came back twice"
    latest = {}
    for issue, comments in pairs:
        latest[str(issue["number"])] = (issue, comments)
    now = fresh_replay.snapshot(source, repo)
    assert_exact(list(latest.values()), now)
    assert latest[fetched[3]][0]["title"] == "edited"
    assert latest[fetched[5]][1][-1]["body"] == "late comment"
    assert len(pairs) == len(now["issues"]) + 2  # the two changed issues: old and new version


@pytest.mark.parametrize("source", ["github", "gitee"])
def test_change_during_the_pass_leaves_no_gap(fresh_replay, source):
    """An issue already fetched is updated mid-pass: it moves to the end of the sorted list and every
    issue behind it moves up one place, so the page walk steps over one. The catch-up walk finds it."""
    repo = REPOS[source]
    forge = _forge(fresh_replay, source)
    pairs = []
    mutated = False
    for pair in forge.fetch_issues(repo):
        pairs.append(pair)
        if len(pairs) == PER_PAGE + 2 and not mutated:  # page 2 being consumed, page 3 not yet requested
            fresh_replay.mutate(source, repo, "update_issue", number=pairs[0][0]["number"], fields={"title": "moved"})
            mutated = True
    now = fresh_replay.snapshot(source, repo)
    latest = {str(i["number"]): (i, c) for i, c in pairs}
    assert_exact(list(latest.values()), now)  # nothing stepped over
    assert len(pairs) == len(now["issues"]) + 1  # the moved issue in both versions


def test_checkpoint_belongs_to_one_fetch(replay, tmp_path):
    cp = tmp_path / "cp"
    forge = GitHubForge(replay.github_url, None)
    rows = list(forge.fetch_repo("weavekit/weave", checkpoint=cp))
    assert rows
    with pytest.raises(CheckpointMismatch):
        list(forge.fetch_repo("tensorflux/tensorflux", checkpoint=cp))
    FetchCheckpoint(cp).clear()
    assert not cp.exists()


CHILD = """
import sys
from llama_platform.sources.github import GitHubForge
forge = GitHubForge(sys.argv[1], None, per_page=10)
n = 0
for row in forge.fetch_repo(sys.argv[2], checkpoint=sys.argv[3]):
    n += 1
print("finished", n, flush=True)
"""


def test_subprocess_killed_mid_pagination_resumes(small_replay, small_corpus_dir, tmp_path):
    """A real process SIGKILLed while waiting for issues page 4 (a slow answer); the retry resumes."""
    data = _data(small_corpus_dir, "github")
    cp_dir = tmp_path / "cp"
    srv = small_replay
    srv.reset()
    path, params = _list_params("github", "issues")
    srv.inject_fault(kind="slow", delay=5, count=1, path_contains=path, params={**params, "page": "4"})
    child = subprocess.Popen([sys.executable, "-c", CHILD, srv.github_url, REPOS["github"], str(cp_dir)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while srv.stats()["faults"][0]["fired"] == 0:  # the child is now stuck on page 4
            assert child.poll() is None, child.stdout.read().decode()
            assert time.monotonic() < deadline, "child never reached page 4"
            time.sleep(0.1)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    state = json.loads((cp_dir / "state.json").read_text())
    assert state["phase"] == "issues" and state["pages"]["issues"] == 3

    srv.reset()
    pairs = list(_forge(srv, "github").fetch_issues(REPOS["github"], checkpoint=cp_dir))
    assert_exact(pairs, data)
    by_endpoint = srv.stats()["by_endpoint"]
    assert "github.repo_comments" not in by_endpoint
    assert by_endpoint["github.issues"] <= math.ceil(len(data["issues"]) / PER_PAGE) - 3 + 1
    assert Path(cp_dir, "issues-00003.json").exists()
