"""Wire-format fixtures: issues and comments in the shape GitHub's REST API really sends them, older
API shapes and malformed items included, written as a corpus folder the replay forge serves.

Each trap below is one real-world case the connectors and the cleaning have to survive:
  LEGACY_PR_NULL   older API / GitHub Enterprise: `"pull_request": {"url": null, ...}` on a plain issue
  REAL_PR          a pull request (its `pull_request` URLs are set)
  ID_JOINED        `comments: 0` (stale), and its repo-wide comments' `issue_url` ends in the issue's *id*
  SHORT_COUNT      `comments: 3` but the forge has 1 comment for it: a shortfall to record
  NULL_BODY / EMPTY_BODY   `body: null` and `body: ""`: distinct in raw data
  two items without a `number` (one lacks the key, one has null; same updated_at) and one with
  `updated_at: null`: quarantined, each on its own
`GITEE_REPO`: a Gitee comment whose `target.issue` names its issue by id only, under a stale `comments: 0`.
`CURSOR_REPO` pages by cursor with `/repositories/{id}/...` `Link` URLs and title-case header names.
"""

from __future__ import annotations

from pathlib import Path

from llama_platform.replay.corpus import write_repo_file

REPO = "oldapi/legacy"
CURSOR_REPO = "oldapi/cursor"
API = "https://api.github.com/repos"
LEGACY_PR_NULL, REAL_PR, ID_JOINED, SHORT_COUNT, NULL_BODY, EMPTY_BODY, NO_UPDATED_AT = 1, 2, 3, 4, 5, 6, 9
ISSUE_ID_BASE = 51_000  # issue id = base + number (the numberless ones: base + 7, base + 8)
KEYLESS_IDS = (ISSUE_ID_BASE + 7, ISSUE_ID_BASE + 8)


def _user(login: str, ident: int, kind: str = "User") -> dict:
    return {"login": login, "id": ident, "node_id": f"MDQ6VXNlcj{ident}", "avatar_url": f"https://avatars.githubusercontent.com/u/{ident}?v=4",
            "gravatar_id": "", "url": f"https://api.github.com/users/{login}", "html_url": f"https://github.com/{login}",
            "type": kind, "site_admin": False}


def _issue(repo: str, number: int | None, title: str, body: str | None, *, comments: int = 0, day: int = 1,
           legacy: bool = False, pull_request: dict | None = None, omit_number: bool = False) -> dict:
    ident = ISSUE_ID_BASE + (number or 0)
    ref = number if number is not None else ident
    url = f"{API}/{repo}/issues/{ref}"
    issue = {
        "url": url, "repository_url": f"{API}/{repo}", "labels_url": f"{url}/labels{{/name}}",
        "comments_url": f"{url}/comments", "events_url": f"{url}/events", "html_url": f"https://github.com/{repo}/issues/{ref}",
        "id": ident, "number": number, "title": title, "user": _user("reporter", 7001),
        "labels": [{"id": 11, "node_id": "MDU6TGFiZWwxMQ==", "url": f"{API}/{repo}/labels/bug", "name": "bug",
                    "color": "d73a4a", "default": True, "description": "Something isn't working"}],
        "state": "open", "locked": False, "assignee": None, "assignees": [], "milestone": None, "comments": comments,
        "created_at": f"2025-03-{day:02d}T10:00:00Z", "updated_at": f"2025-03-{day:02d}T12:00:00Z", "closed_at": None,
        "author_association": "NONE", "active_lock_reason": None, "body": body,
    }
    if legacy:
        # Older API data (and some GitHub Enterprise servers): the key is there on plain issues, its URLs null.
        issue["pull_request"] = {"url": None, "html_url": None, "diff_url": None, "patch_url": None}
    else:
        issue.update({"node_id": f"I_kwDO{ident}", "timeline_url": f"{url}/timeline", "performed_via_github_app": None,
                      "state_reason": None, "reactions": {"url": f"{url}/reactions", "total_count": 0, "+1": 0, "-1": 0,
                                                          "laugh": 0, "hooray": 0, "confused": 0, "heart": 0,
                                                          "rocket": 0, "eyes": 0}})
    if pull_request is not None:
        issue["pull_request"] = pull_request
    if omit_number:
        del issue["number"]
    return issue


def _comment(repo: str, ident: int, issue_ref: int, body: str | None, day: int) -> dict:
    return {"url": f"{API}/{repo}/issues/comments/{ident}", "html_url": f"https://github.com/{repo}/issues/{issue_ref}#issuecomment-{ident}",
            "issue_url": f"{API}/{repo}/issues/{issue_ref}", "id": ident, "node_id": f"IC_kwDO{ident}",
            "user": _user("helper", 7002), "created_at": f"2025-03-{day:02d}T11:00:00Z",
            "updated_at": f"2025-03-{day:02d}T11:30:00Z", "author_association": "CONTRIBUTOR", "body": body,
            "performed_via_github_app": None}


TEXT = "The exporter crashes when the output folder is on a network share; steps to reproduce below."


def legacy_repo() -> tuple[list[dict], list[dict]]:
    r = REPO
    issues = [
        _issue(r, LEGACY_PR_NULL, "Exporter crashes on network shares", TEXT, comments=1, day=1, legacy=True),
        _issue(r, REAL_PR, "Fix exporter on network shares", "Fixes #1.", day=2, pull_request={
            "url": f"{API}/{r}/pulls/2", "html_url": f"https://github.com/{r}/pull/2",
            "diff_url": f"https://github.com/{r}/pull/2.diff", "patch_url": f"https://github.com/{r}/pull/2.patch",
            "merged_at": None}),
        _issue(r, ID_JOINED, "Importer drops the last row of a CSV file", TEXT, comments=0, day=3, legacy=True),
        _issue(r, SHORT_COUNT, "Progress bar stuck at 99 percent on large files", TEXT, comments=3, day=4),
        _issue(r, NULL_BODY, "Settings dialog does not open on the second monitor", None, day=5),
        _issue(r, EMPTY_BODY, "Dark theme makes the warning icons invisible", "", day=6),
        _issue(r, None, "An item without a number key at all", TEXT, day=7, omit_number=True),
        _issue(r, None, "An item whose number is null", TEXT, day=7),
        _issue(r, NO_UPDATED_AT, "An item whose updated_at is null", TEXT, day=8),
    ]
    issues[-1]["updated_at"] = None
    issues[-2]["id"], issues[-3]["id"] = KEYLESS_IDS[1], KEYLESS_IDS[0]
    comments = [
        _comment(r, 900_001, LEGACY_PR_NULL, "Same here on SMB mounts.", 1),
        # Older data: the repo-wide comments' issue_url names the issue by id, not number.
        _comment(r, 900_002, ISSUE_ID_BASE + ID_JOINED, "It is the trailing newline handling.", 3),
        _comment(r, 900_003, ISSUE_ID_BASE + ID_JOINED, None, 3),  # null comment body
        _comment(r, 900_004, SHORT_COUNT, "Reproduced with a 4 GiB file.", 4),
    ]
    return issues, comments


def cursor_repo(n: int = 7) -> tuple[list[dict], list[dict]]:
    issues = [_issue(CURSOR_REPO, k, f"Cursor paged issue number {k}", TEXT, day=k) for k in range(1, n + 1)]
    issues[0]["comments"] = 6  # the forge has 5: a stale count
    comments = [_comment(CURSOR_REPO, 910_000 + k, 1, f"comment {k} on the first issue", 1) for k in range(5)]
    return issues, comments


CURSOR_WIRE = {"link_style": "cursor", "link_path": "repositories", "header_case": "title"}
GITEE_REPO = "oldapi/gitee-legacy"
GITEE_ISSUE_ID = 8_100_001


def gitee_repo() -> tuple[list[dict], list[dict]]:
    """Gitee v5 shapes: `comments: 0` (stale), and a comment whose `target.issue` names the issue by id only."""
    api = f"https://gitee.com/api/v5/repos/{GITEE_REPO}"
    user = {"id": 8000446, "login": "zhouxin_dev", "name": "周欣", "url": "https://gitee.com/api/v5/users/zhouxin_dev",
            "html_url": "https://gitee.com/zhouxin_dev", "remark": "", "type": "User"}
    issues = [{
        "id": GITEE_ISSUE_ID + k, "url": f"{api}/issues/I0AAA{k}", "repository_url": api, "html_url": f"https://gitee.com/{GITEE_REPO}/issues/I0AAA{k}",
        "parent_url": None, "number": f"I0AAA{k}", "parent_id": 0, "depth": 0, "state": "open",
        "title": f"配置中心启动失败 {k}", "body": "多租户模式开启后，配置中心报错：Connection refused。", "user": user,
        "labels": [{"id": 180000, "name": "bug", "color": "d73a4a"}], "assignee": None, "collaborators": [],
        "repository": None, "milestone": None, "created_at": f"2025-03-0{k + 1}T10:00:00+08:00",
        "updated_at": f"2025-03-0{k + 1}T12:00:00+08:00", "plan_started_at": None, "deadline": None, "finished_at": None,
        "scheduled_time": 0.0, "comments": 0, "priority": 0, "issue_type": "缺陷", "security_hole": False,
    } for k in range(2)]
    comments = [{"id": 30_000_001, "body": "麻烦贴一下完整的异常堆栈和配置。", "user": user, "source": None,
                 "target": {"issue": {"id": GITEE_ISSUE_ID, "title": issues[0]["title"]}, "pull_request": None},
                 "created_at": "2025-03-01T11:00:00+08:00", "updated_at": "2025-03-01T11:00:00+08:00"}]
    return issues, comments


def write_wire_corpus(out: Path) -> Path:
    write_repo_file(out, "github", REPO, *legacy_repo())
    write_repo_file(out, "github", CURSOR_REPO, *cursor_repo(), wire=CURSOR_WIRE)
    write_repo_file(out, "gitee", GITEE_REPO, *gitee_repo())
    return out
