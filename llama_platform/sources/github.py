"""GitHub connector on PyGithub: a repo's issues (PRs included) with their comments, as raw rows.

One paginated pass over `GET /repos/{o}/{r}/issues/comments` (repo-wide, joined to issues by the
number at the end of `issue_url`) and one over `GET /repos/{o}/{r}/issues?state=all&sort=updated`,
so a full fetch costs ceil(issues/per_page) + ceil(comments/per_page) requests, not one per issue.
PyGithub does auth, pagination (Link headers), rate-limit handling and retries (its urllib3-based
GithubRetry: 5xx retried with bounded exponential backoff).

The JSON is kept lossless: list pages are read through PyGithub's `PaginatedList` into a plain-dict
holder instead of `Issue` objects, because `Issue.raw_data` on a list element triggers one extra
"complete the object" GET per issue.

Incremental fetches (`since`): only comments updated since then come back from the repo-wide pass,
so for an issue whose `comments` count exceeds what was joined, its comments are fetched on their
own (`GET /repos/{o}/{r}/issues/{n}/comments`). A full fetch never needs that.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime
from typing import Any, Iterator
from urllib.parse import urlparse

import github
from github import Auth, Github, GithubException, GithubRetry
from github.PaginatedList import PaginatedList

from llama_platform.sources.forge import ForgeAuthError, ForgeError, RepoNotFound, check_repo, redact, utc
from llama_platform.sources.records import raw_row

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class _RawJson:
    """PaginatedList content class that keeps each element's JSON as the forge sent it."""

    def __init__(self, requester: Any, headers: Any, attributes: dict[str, Any]):
        self.data = attributes


def _issue_number(comment: dict) -> str | None:
    url = comment.get("issue_url")
    if not isinstance(url, str) or "/issues/" not in url:
        return None
    return url.rsplit("/", 1)[-1]


class GitHubForge:
    source = "github"

    def __init__(
        self,
        base_url: str,
        token: str | None,
        per_page: int = 100,
        seconds_between_requests: float | None = None,
        timeout: float = 30.0,
        retries: int = 4,
    ):
        """`seconds_between_requests`: PyGithub's politeness throttle; None = PyGithub's default
        (0.25 s) for a real forge and 0 for a loopback one (the replay forge has no rate limits)."""
        if not 1 <= per_page <= 100:
            raise ValueError(f"per_page must be 1..100, got {per_page}")
        self.base_url = base_url.rstrip("/")
        self.per_page = per_page
        self._token = token
        if seconds_between_requests is None:
            loopback = urlparse(self.base_url).hostname in LOOPBACK_HOSTS
            seconds_between_requests = 0.0 if loopback else github.Consts.DEFAULT_SECONDS_BETWEEN_REQUESTS
        retry = GithubRetry(total=retries, backoff_factor=0.5, backoff_max=10, max_rate_limit_wait=900)
        self._gh = Github(
            base_url=self.base_url,
            auth=Auth.Token(token) if token else None,
            per_page=per_page,
            lazy=True,
            retry=retry,
            timeout=int(timeout),
            seconds_between_requests=seconds_between_requests,
        )

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[dict]:
        for item in PaginatedList(_RawJson, self._gh.requester, path, params):
            yield item.data

    def fetch_repo(self, repo: str, since: datetime | None = None) -> Iterator[dict]:
        """One `records.raw_row` per issue/PR updated at or after `since` (all when None)."""
        for issue, comments in self.fetch_issues(repo, since):
            yield raw_row(self.source, repo, issue, comments)

    def fetch_issues(self, repo: str, since: datetime | None = None) -> Iterator[tuple[dict, list[dict]]]:
        """(issue JSON, its comments' JSON) pairs exactly as the forge sent them."""
        check_repo(repo)
        since = utc(since)
        try:
            yield from self._fetch(repo, since)
        except GithubException as exc:
            raise self._error(repo, exc) from None
        except (ForgeError, ValueError):
            raise
        except Exception as exc:  # noqa: BLE001 - transport errors (connection, retries exhausted)
            raise ForgeError(redact(f"GitHub request for {repo} failed: {type(exc).__name__}: {exc}", self._token)) from None

    def _fetch(self, repo: str, since: datetime | None) -> Iterator[tuple[dict, list[dict]]]:
        base = f"/repos/{repo}"
        since_param = {"since": since.strftime("%Y-%m-%dT%H:%M:%SZ")} if since else {}
        comments: dict[str, list[dict]] = defaultdict(list)
        for c in self._pages(f"{base}/issues/comments", {"sort": "created", "direction": "asc", **since_param}):
            number = _issue_number(c)
            if number is None:
                raise ForgeError(f"GitHub comment {c.get('id')!r} in {repo} has no usable issue_url")
            comments[number].append(c)
        seen: set[str] = set()
        refetched = 0
        for issue in self._pages(f"{base}/issues", {"state": "all", "sort": "updated", "direction": "asc", **since_param}):
            number = str(issue.get("number"))
            seen.add(number)
            joined = comments.get(number, [])
            expected = issue.get("comments")
            if isinstance(expected, int) and expected > len(joined):
                # Older comments of an issue updated since `since` (or a comment added mid-fetch).
                joined = list(self._pages(f"{base}/issues/{number}/comments", {}))
                refetched += 1
            yield issue, joined
        orphans = sum(len(v) for k, v in comments.items() if k not in seen)
        if orphans:
            # Comments whose issue was not updated in the window: the issue row is not part of this
            # fetch, so they belong to a later one; say so rather than drop them silently.
            log.warning("github %s: %d comments belong to issues outside this fetch window", repo, orphans)
        if refetched:
            log.info("github %s: fetched comments of %d issues one by one", repo, refetched)

    def _error(self, repo: str, exc: GithubException) -> ForgeError:
        message = exc.data.get("message") if isinstance(exc.data, dict) else None
        text = redact(f"GitHub {exc.status} for {repo}: {message or exc.message or 'request failed'}", self._token)
        if exc.status in (401, 403) and not isinstance(exc, github.RateLimitExceededException):
            return ForgeAuthError(text, exc.status)
        if exc.status == 404:
            return RepoNotFound(text, exc.status)
        return ForgeError(text, exc.status)
