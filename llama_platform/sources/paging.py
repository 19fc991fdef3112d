"""The fetch both connectors share: two sorted passes, joined, checkpointed page by page.

A fetch of `repo` since T is
  1. the comments pass: `GET .../issues/comments?sort=updated&direction=asc&since=T`, every page;
  2. the issues pass: `GET .../issues?state=all&sort=updated&direction=asc&since=T`, every page,
     each issue joined with its comments (by issue number, or by its id: older data's `issue_url`
     ends in the id) and yielded page by page;
  3. the issues of comments updated since T whose issue was not (an edited comment does not touch
     its issue's `updated_at`): each fetched on its own, with its comments, so the edit is not lost.
A full fetch costs ceil(comments/per_page) + ceil(issues/per_page) requests. An issue whose
`comments` count exceeds what was joined (incremental fetch: its older comments were not updated
since T; or a comment added mid-fetch) gets its comments with one per-issue request; if the forge
still has fewer than the count says (a stale count), the shortfall is recorded in `last_report`.
Pages are walked by the URL the forge gives for the next one (GitHub's `Link`), never by computing
`page=N+1`, so cursor-paged endpoints and `/repositories/{id}/...` links work.

Both lists are sorted by update time, so an item updated during a pass moves to the end, where the
pass sees it again. If it had already been fetched, every item behind it moved up one place, and
the page walk may have stepped over one of them. So when an item comes back with a new
`updated_at`, the pass ends with a catch-up walk from the older `updated_at` (items already seen
are skipped). A resumed fetch restarts its pass from the latest `updated_at` completed (keyset,
not page number: the list may have changed while the fetch was down). Rows are deduplicated by
(number, updated_at); a changed issue yields one row per version, the latest wins downstream. An
item without a number is kept under its id (or its content hash): it is yielded, never merged with
another, and the cleaning quarantines it with a reason.

`last_report` (a dict, after each fetch) says what the forge's data lacked: per-issue comment
shortfalls, comments whose issue could not be found, items without a number, per-issue refetches.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from llama_platform.sources.checkpoint import FetchCheckpoint
from llama_platform.sources.forge import ForgeError, OnWait, check_repo, utc
from llama_platform.sources.records import canonical_json, payload_hash, raw_row
from llama_platform.sources.resilience import RequestPolicy

log = logging.getLogger(__name__)

MAX_CATCH_UP_WALKS = 3


@dataclass
class Page:
    items: list[dict]
    has_next: bool
    next_url: str | None = None  # the forge's URL for the next page, followed as given


def issue_identity(issue: dict) -> str:
    """What de-duplicates an issue within a fetch: its number; else (malformed) its id or content hash."""
    number = issue.get("number")
    if number is not None and number != "":
        return str(number)
    if issue.get("id") is not None:
        return f"id:{issue['id']}"
    return "sha:" + payload_hash(canonical_json(issue))


def null_items(data: Any) -> int:
    """How many items of a list page are not JSON objects (null, most often)."""
    return sum(1 for item in data if not isinstance(item, dict)) if isinstance(data, list) else 0


def parse_updated(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts.astimezone(timezone.utc) if ts.tzinfo else None


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts else None


def _version(item: dict) -> str:
    """An item's version: its updated_at in UTC (or as given, if unparseable: still a stable key)."""
    ts = parse_updated(item.get("updated_at"))
    return ts.isoformat() if ts else f"raw:{item.get('updated_at')!r}"


def _updated_or_min(item: dict) -> datetime:
    return parse_updated(item.get("updated_at")) or datetime.min.replace(tzinfo=timezone.utc)


def _comment_sort_key(c: dict) -> tuple:
    ident = c.get("id")
    return (0, ident, "") if isinstance(ident, int) else (1, 0, str(ident))


class PagedForge:
    """Base of the GitHub and Gitee connectors. Subclasses implement the four hooks below."""

    source: str
    per_page: int
    policy: RequestPolicy

    last_report: dict[str, Any]

    # -- hooks --
    def _list_page(self, repo: str, kind: str, since: datetime | None, page: int, url: str | None = None) -> Page:
        """One page of `kind` ("issues" or "comments"), sorted by updated_at ascending: page `page`,
        or (when given) the forge's own `url` for it."""
        raise NotImplementedError

    def _issue_comments(self, repo: str, number: str) -> list[dict]:
        raise NotImplementedError

    def _issue(self, repo: str, number: str) -> dict | None:
        """One issue by number (None: the forge has no such issue)."""
        raise NotImplementedError

    def _comment_issue_number(self, comment: dict) -> str | None:
        """The issue reference a repo-wide comment carries: a number, or (older data) the issue's id."""
        raise NotImplementedError

    @contextmanager
    def _errors(self, repo: str) -> Iterator[None]:
        """Turn library exceptions into redacted ForgeErrors."""
        yield

    # -- public API --
    def fetch_repo(
        self,
        repo: str,
        since: datetime | None = None,
        checkpoint: FetchCheckpoint | str | Path | None = None,
        on_wait: OnWait | None = None,
    ) -> Iterator[dict]:
        """One `records.raw_row` per issue/PR version updated at or after `since` (all when None).

        `checkpoint` (a FetchCheckpoint or a folder path) makes the fetch resumable; `on_wait`
        (seconds, reason) hears about every rate-limit or retry wait before it is slept.
        """
        for issue, comments in self.fetch_issues(repo, since, checkpoint=checkpoint, on_wait=on_wait):
            yield raw_row(self.source, repo, issue, comments)

    def fetch_issues(
        self,
        repo: str,
        since: datetime | None = None,
        checkpoint: FetchCheckpoint | str | Path | None = None,
        on_wait: OnWait | None = None,
    ) -> Iterator[tuple[dict, list[dict]]]:
        """(issue JSON, its comments' JSON) pairs exactly as the forge sent them."""
        check_repo(repo)
        since = utc(since)
        cp = FetchCheckpoint.coerce(checkpoint)
        cp.bind(self.source, repo, since)
        with self._on_wait(on_wait), self._errors(repo):
            yield from self._fetch(repo, since, cp)

    @contextmanager
    def _on_wait(self, on_wait: OnWait | None) -> Iterator[None]:
        previous = self.policy.on_wait
        if on_wait is not None:
            self.policy.on_wait = on_wait
        try:
            yield
        finally:
            self.policy.on_wait = previous

    # -- the fetch --
    def _fetch(self, repo: str, since: datetime | None, cp: FetchCheckpoint) -> Iterator[tuple[dict, list[dict]]]:
        comments: dict[str, dict[Any, dict]] = {}  # issue reference -> comment id -> latest comment
        seen_comments: dict[Any, set[str]] = {}
        joined_refs: set[str] = set()  # the references that named an issue of this fetch
        report: dict[str, Any] = {"refetched_issues": 0, "comment_shortfall": {}, "orphan_comments": 0,
                                  "orphan_issues_fetched": 0, "keyless_items": 0}
        self.last_report = report

        def join_comments(page: list[dict]) -> list[dict]:
            for c in page:
                number = self._comment_issue_number(c)
                if number is None:
                    raise ForgeError(f"{self.source} comment {c.get('id')!r} in {repo} names no issue")
                by_id = comments.setdefault(number, {})
                old = by_id.get(c.get("id"))
                if old is None or _updated_or_min(c) >= _updated_or_min(old):  # latest version wins
                    by_id[c.get("id")] = c
            return page

        for page in cp.pages("comments") if cp.phase != "done" else ():
            join_comments(page)
            for c in page:
                seen_comments.setdefault(c.get("id"), set()).add(_version(c))
        if cp.phase == "comments":
            for _ in self._pass(repo, "comments", since, cp, seen_comments, join_comments, lambda c: c.get("id")):
                pass
            cp.set_phase("issues")

        seen_issues: dict[Any, set[str]] = {}

        def issue_refs(issue: dict) -> list[str]:
            # The number, and the id: older data's repo-wide comments name their issue by id.
            return [str(issue[k]) for k in ("number", "id") if issue.get(k) is not None and issue.get(k) != ""]

        def with_comments(issue: dict) -> list:
            refs = issue_refs(issue)
            joined_refs.update(refs)
            by_id = {c.get("id"): c for ref in refs for c in comments.get(ref, {}).values()}
            joined = sorted(by_id.values(), key=_comment_sort_key)
            number = issue.get("number")
            expected = issue.get("comments")
            if number is None or number == "":
                report["keyless_items"] += 1  # no number to fetch its comments by: a shortfall is recorded
                if isinstance(expected, int) and expected > len(joined):
                    report["comment_shortfall"][issue_identity(issue)] = {"expected": expected, "attached": len(joined)}
            elif isinstance(expected, int) and expected > len(joined):
                # Older comments of an issue updated since `since`, or one added mid-fetch.
                joined = self._issue_comments(repo, str(number))
                report["refetched_issues"] += 1
                if expected > len(joined):  # a stale count: the forge has fewer than it says
                    report["comment_shortfall"][str(number)] = {"expected": expected, "attached": len(joined)}
            return [issue, joined]

        def join_issues(page: list[dict]) -> list[list]:
            return [with_comments(issue) for issue in page]

        for page in cp.pages("issues"):  # replay what an interrupted attempt fetched
            for issue, joined in page:
                seen_issues.setdefault(issue_identity(issue), set()).add(_version(issue))
                joined_refs.update(issue_refs(issue))
                yield issue, joined
        if cp.phase == "issues":
            for page in self._pass(repo, "issues", since, cp, seen_issues, join_issues, issue_identity):
                for issue, joined in page:
                    yield issue, joined
            yield from self._orphans(repo, comments, joined_refs, seen_issues, with_comments, report)
            cp.set_phase("done")
            if report["refetched_issues"]:
                log.info("%s %s: fetched comments of %d issues one by one", self.source, repo, report["refetched_issues"])
            if report["comment_shortfall"]:
                log.warning("%s %s: %d issues have fewer comments than their count says (stale counts): %s", self.source,
                            repo, len(report["comment_shortfall"]), sorted(report["comment_shortfall"])[:20])

    def _orphans(self, repo: str, comments: dict[str, dict[Any, dict]], joined_refs: set[str],
                 seen_issues: dict[Any, set[str]], with_comments, report: dict) -> Iterator[tuple[dict, list[dict]]]:
        """Issues of comments updated in the window whose issue was not (an edited comment leaves its
        issue's updated_at alone): fetch each issue with its comments, so the edit reaches raw data."""
        for ref in sorted(set(comments) - joined_refs):
            issue = self._issue(repo, ref)
            if issue is None or issue_identity(issue) in seen_issues:
                # Not found (deleted, or an id the forge cannot look up), or an issue already yielded
                # that does not claim them: counted and logged, never dropped silently.
                report["orphan_comments"] += len(comments[ref])
                log.warning("%s %s: %d comments name issue %s, which this fetch cannot attach them to", self.source,
                            repo, len(comments[ref]), ref)
                continue
            seen_issues.setdefault(issue_identity(issue), set()).add(_version(issue))
            report["orphan_issues_fetched"] += 1
            issue, joined = with_comments(issue)
            attached = {c.get("id") for c in joined}
            report["orphan_comments"] += sum(1 for ident in comments[ref] if ident not in attached)
            yield issue, joined

    def _pass(self, repo: str, kind: str, since: datetime | None, cp: FetchCheckpoint, seen: dict[Any, set[str]],
              prepare, identity) -> Iterator[list]:
        """Walk one sorted list to its end, yielding each page's new records after checkpointing them."""
        # cursor: the current walk (`since`, next `page`), the newest updated_at on its completed pages
        # (`run_high`), the catch-up still owed (`catch_up`), how many catch-up walks were made, and
        # whether the forge really sorted by updated_at (`unsorted`: a forge that ignores `sort`).
        cursor = cp.pass_state(kind)
        if cursor is None:
            cursor = {"pass_since": _iso(since), "since": _iso(since), "page": 1, "next": None, "run_high": None,
                      "last": None, "catch_up": None, "walks": 0, "unsorted": False}
        elif cp.resumed:
            # Keyset restart, not page number: the list may have changed while the fetch was down.
            points = [x for x in (cursor["catch_up"], cursor["run_high"] or cursor["since"]) if x]
            restart = min(points, key=parse_updated) if points else None
            if cursor["unsorted"]:  # no keyset to restart from: walk the whole pass again (deduplicated)
                restart = cursor["pass_since"]
            cursor = {**cursor, "since": restart, "page": 1, "next": None, "run_high": None, "last": None, "catch_up": None}
        while True:
            page = self._list_page(repo, kind, parse_updated(cursor["since"]), cursor["page"], cursor.get("next"))
            fresh = []
            for item in page.items:
                ident, version = identity(item), _version(item)
                ts = parse_updated(item.get("updated_at"))
                if ts:
                    if cursor["last"] and ts < parse_updated(cursor["last"]) and not cursor["unsorted"]:
                        log.info("%s %s: %s are not sorted by updated_at; a resume restarts the pass", self.source, repo, kind)
                        cursor["unsorted"] = True
                    cursor["last"] = ts.isoformat()
                    if cursor["run_high"] is None or ts > parse_updated(cursor["run_high"]):
                        cursor["run_high"] = ts.isoformat()
                versions = seen.setdefault(ident, set())
                if version in versions:
                    continue  # already have this version (a restart or catch-up overlaps)
                if versions and not cursor["unsorted"]:
                    # Changed since we fetched it: it moved to the end and the list shifted under us.
                    older = min((v for v in versions if not v.startswith("raw:")), key=parse_updated, default=None)
                    if older and (cursor["catch_up"] is None or parse_updated(older) < parse_updated(cursor["catch_up"])):
                        cursor["catch_up"] = older
                versions.add(version)
                fresh.append(item)
            records = prepare(fresh)
            cursor["page"] += 1
            cursor["next"] = page.next_url
            more = page.has_next
            if not more and cursor["catch_up"]:
                if cursor["walks"] < MAX_CATCH_UP_WALKS:
                    log.info("%s %s: %s changed during the pass; catching up from %s", self.source, repo, kind, cursor["catch_up"])
                    cursor = {**cursor, "since": cursor["catch_up"], "page": 1, "next": None, "run_high": None,
                              "last": None, "catch_up": None, "walks": cursor["walks"] + 1}
                    more = True
                else:
                    log.warning("%s %s: %s kept changing during %d catch-up walks; an item may have been missed "
                                "until the next refresh", self.source, repo, kind, MAX_CATCH_UP_WALKS)
                    cursor["catch_up"] = None
            cp.page_done(kind, records, cursor)
            yield records
            if not more:
                return
