"""Gitee (API v5) connector on httpx: a repo's issues with their comments, as raw rows.

Same contract as the GitHub connector: one paginated pass over the repo-wide comments endpoint
(joined to issues by `target.issue.number`) and one over the issues (`state=all`, `sort=updated`,
`direction=asc`), paging until the `total_page` header says stop; per-issue comment fetches only for
issues whose `comments` count exceeds what an incremental (`since`) pass joined.

Gitee takes the token as the `access_token` query parameter. To keep it out of logs, it is added by
a transport wrapper *below* httpx's client: httpx logs (and attaches to responses and errors) the
request it built, which never holds the token. Connector errors are redacted as well.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime
from typing import Any, Iterator

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from llama_platform.sources.forge import ForgeAuthError, ForgeError, RepoNotFound, check_repo, redact, utc
from llama_platform.sources.records import raw_row

log = logging.getLogger(__name__)


class _AccessTokenTransport(httpx.BaseTransport):
    """Adds `access_token` to each request on its way to the wire, after httpx has logged it."""

    def __init__(self, token: str | None, inner: httpx.BaseTransport):
        self._token = token
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self._token:
            request = httpx.Request(
                request.method,
                request.url.copy_merge_params({"access_token": self._token}),
                headers=request.headers,
                stream=request.stream,
                extensions=request.extensions,
            )
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


class _Transient(Exception):
    """A response worth retrying (5xx, 429); carries it for the final error message."""

    def __init__(self, response: httpx.Response):
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, (_Transient, httpx.TransportError))


def _issue_number(comment: dict) -> str | None:
    target = comment.get("target")
    issue = target.get("issue") if isinstance(target, dict) else None
    number = issue.get("number") if isinstance(issue, dict) else None
    return None if number is None else str(number)


class GiteeForge:
    source = "gitee"

    def __init__(self, base_url: str, token: str | None, per_page: int = 100, timeout: float = 30.0, retries: int = 4):
        if not 1 <= per_page <= 100:
            raise ValueError(f"per_page must be 1..100, got {per_page}")
        self.base_url = base_url.rstrip("/")
        self.per_page = per_page
        self.retries = retries
        self._token = token
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            transport=_AccessTokenTransport(token, httpx.HTTPTransport()),
            headers={"Accept": "application/json", "User-Agent": "llama-platform"},
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "GiteeForge":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- HTTP --
    def _get_once(self, path: str, params: dict[str, Any]) -> httpx.Response:
        response = self._client.get(path, params=params)
        if response.status_code >= 500 or response.status_code == 429:
            raise _Transient(response)
        return response

    def _get(self, path: str, params: dict[str, Any]) -> httpx.Response:
        retrying = Retrying(
            retry=retry_if_exception(_is_transient),
            stop=stop_after_attempt(self.retries + 1),
            wait=wait_exponential(multiplier=0.5, max=10),
            reraise=True,
        )
        try:
            response = retrying(self._get_once, path, params)
        except _Transient as exc:
            response = exc.response
        except httpx.HTTPError as exc:
            raise ForgeError(redact(f"Gitee request {path} failed: {type(exc).__name__}: {exc}", self._token)) from None
        if response.status_code >= 400:
            raise self._error(path, response)
        return response

    def _error(self, path: str, response: httpx.Response) -> ForgeError:
        try:
            message = response.json().get("message")
        except (ValueError, AttributeError):
            message = response.text[:200]
        text = redact(f"Gitee {response.status_code} for {path}: {message or response.reason_phrase}", self._token)
        if response.status_code in (401, 403):
            return ForgeAuthError(text, response.status_code)
        if response.status_code == 404:
            return RepoNotFound(text, response.status_code)
        return ForgeError(text, response.status_code)

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[dict]:
        page = 1
        while True:
            response = self._get(path, {**params, "page": page, "per_page": self.per_page})
            data = response.json()
            if not isinstance(data, list):
                raise ForgeError(f"Gitee {path} page {page}: expected a JSON list, got {type(data).__name__}")
            yield from data
            total_page = response.headers.get("total_page")
            if total_page is not None and total_page.isdigit():
                if page >= int(total_page):
                    return
            elif len(data) < self.per_page:  # no header: a short page is the last one
                return
            page += 1

    # -- fetch --
    def fetch_repo(self, repo: str, since: datetime | None = None) -> Iterator[dict]:
        """One `records.raw_row` per issue updated at or after `since` (all when None)."""
        for issue, comments in self.fetch_issues(repo, since):
            yield raw_row(self.source, repo, issue, comments)

    def fetch_issues(self, repo: str, since: datetime | None = None) -> Iterator[tuple[dict, list[dict]]]:
        """(issue JSON, its comments' JSON) pairs exactly as the forge sent them."""
        check_repo(repo)
        since = utc(since)
        base = f"/repos/{repo}"
        since_param = {"since": since.isoformat()} if since else {}
        comments: dict[str, list[dict]] = defaultdict(list)
        for c in self._pages(f"{base}/issues/comments", {"order": "asc", **since_param}):
            number = _issue_number(c)
            if number is None:
                raise ForgeError(f"Gitee comment {c.get('id')!r} in {repo} has no target.issue.number")
            comments[number].append(c)
        seen: set[str] = set()
        for issue in self._pages(f"{base}/issues", {"state": "all", "sort": "updated", "direction": "asc", **since_param}):
            number = str(issue.get("number"))
            seen.add(number)
            joined = comments.get(number, [])
            expected = issue.get("comments")
            if isinstance(expected, int) and expected > len(joined):
                joined = list(self._pages(f"{base}/issues/{number}/comments", {"order": "asc"}))
            yield issue, joined
        orphans = sum(len(v) for k, v in comments.items() if k not in seen)
        if orphans:
            log.warning("gitee %s: %d comments belong to issues outside this fetch window", repo, orphans)
