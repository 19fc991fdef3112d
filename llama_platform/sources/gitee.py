"""Gitee (API v5) connector on httpx: a repo's issues with their comments, as raw rows.

Same contract as the GitHub connector (the shared fetch is `paging.PagedForge`): one paginated
pass over the repo-wide comments endpoint (joined to issues by `target.issue.number`, `sort=updated`,
`order=asc`) and one over the issues (`state=all`, `sort=updated`, `direction=asc`), paging until
the `total_page` header says stop; per-issue comment fetches only for issues whose `comments` count
exceeds what an incremental (`since`) pass joined. Issue numbers are strings (`I8QK2Z`), timestamps
`+08:00` (normalised to UTC by `records.normalise`; the raw row keeps Gitee's JSON and its four states).
Retries and rate limits as for GitHub (`resilience.RequestPolicy`); Gitee has no ETags, so `poll`
asks for the newest issue updated since the last one seen.

Gitee takes the token as the `access_token` query parameter. To keep it out of logs, it is added by
a transport wrapper *below* httpx's client: httpx logs (and attaches to responses and errors) the
request it built, which never holds the token. Connector errors are redacted as well.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Iterator

import httpx

from llama_platform.sources.forge import (
    BadPayload,
    ForgeAuthError,
    ForgeError,
    OnWait,
    PageNotFound,
    PollResult,
    RepoNotFound,
    check_repo,
    redact,
)
from llama_platform.sources.paging import Page, PagedForge, null_items, parse_updated
from llama_platform.sources.resilience import RequestPolicy, Retry

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


def _issue_number(comment: dict) -> str | None:
    """The comment's `target.issue` number, or (when an older answer lacks it) the issue's id."""
    target = comment.get("target")
    issue = target.get("issue") if isinstance(target, dict) else None
    if not isinstance(issue, dict):
        return None
    ref = issue.get("number") if issue.get("number") not in (None, "") else issue.get("id")
    return None if ref is None else str(ref)


class GiteeForge(PagedForge):
    source = "gitee"

    def __init__(self, base_url: str, token: str | None = None, per_page: int = 100, timeout: float = 30.0, retries: int = 4,
                 *, max_wait: float = 60.0, backoff: float = 0.5, on_wait: OnWait | None = None):
        if not 1 <= per_page <= 100:
            raise ValueError(f"per_page must be 1..100, got {per_page}")
        self.base_url = base_url.rstrip("/")
        self.per_page = per_page
        self._token = token
        self.policy = RequestPolicy("Gitee", retries=retries, backoff=backoff, max_wait=max_wait, on_wait=on_wait)
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

    # -- one request --
    def _get(self, path: str, params: dict[str, Any], *, expect_list: bool = False,
             later_page: bool = False) -> tuple[httpx.Response, Any]:
        """GET with retries; returns the response and its JSON. `expect_list`: the answer must be a list
        of objects; `later_page`: a 404 means the page, not the repo, is missing."""

        def bad(what: str) -> Retry:
            where = f"{path} page {params['page']}" if "page" in params else path
            return Retry(what, BadPayload(redact(f"Gitee {where} answered 200 with {what}", self._token), 200))

        def attempt() -> tuple[httpx.Response, Any]:
            try:
                response = self._client.get(path, params=params)
            except httpx.TransportError as exc:  # reset, timeout, refused, truncated stream
                name = type(exc).__name__
                raise Retry(name, ForgeError(redact(f"Gitee request {path} failed: {name}: {exc}", self._token))) from None
            if response.status_code >= 400:
                raise self._classify(path, response, later_page)
            if not response.content.strip():
                raise bad("an empty body")
            try:
                data = response.json()
            except ValueError as exc:  # a truncated or garbled body, or not JSON at all (a proxy's HTML page)
                if response.content.lstrip()[:1] not in (b"{", b"["):
                    kind = response.headers.get("content-type", "unknown content type")
                    raise bad(f"a body that is not JSON ({kind})") from None
                raise Retry(f"invalid JSON body ({type(exc).__name__})",
                            ForgeError(redact(f"Gitee {path}: invalid JSON body: {exc}", self._token))) from None
            if expect_list and not isinstance(data, list):
                raise bad(f"a JSON {type(data).__name__} where a list belongs")
            if expect_list and (n := null_items(data)):
                raise bad(f"{n} null item(s) in a list of {len(data)}")
            self.policy.observe(response.headers)
            return response, data

        return self.policy.call(attempt)

    def _classify(self, path: str, response: httpx.Response, later_page: bool = False) -> Exception:
        try:
            message = response.json().get("message")
        except (ValueError, AttributeError):
            message = response.text[:200]
        text = redact(f"Gitee {response.status_code} for {path}: {message or response.reason_phrase}", self._token)
        status = response.status_code
        retry = self.policy.rate_limited(status, response.headers, message, ForgeError(text, status), where=path)
        if retry is not None:
            return retry
        if status >= 500:
            return Retry(f"HTTP {status}", ForgeError(text, status))
        if status in (401, 403):
            return ForgeAuthError(text, status)
        if status == 404 and later_page:
            # The repo answered the first page: this page is gone. Retried (a replica may lag), then named.
            page = response.request.url.params.get("page")
            text = redact(f"Gitee 404 for {path} page {page} (a later page of a list whose first page was served): "
                          f"{message or response.reason_phrase}", self._token)
            return Retry("HTTP 404 on a later page", PageNotFound(text, status))
        if status == 404:
            return RepoNotFound(text, status)
        return ForgeError(text, status)

    @contextmanager
    def _errors(self, repo: str) -> Iterator[None]:
        try:
            yield
        except (ForgeError, ValueError):
            raise
        except httpx.HTTPError as exc:
            raise ForgeError(redact(f"Gitee request for {repo} failed: {type(exc).__name__}: {exc}", self._token)) from None

    def _has_next(self, response: httpx.Response, page: int, n: int) -> bool:
        total_page = response.headers.get("total_page")
        if total_page is not None and total_page.isdigit():
            return page < int(total_page)
        return n >= self.per_page  # no header: a short page is the last one

    # -- PagedForge hooks --
    def _list_page(self, repo: str, kind: str, since: datetime | None, page: int, url: str | None = None) -> Page:
        # Gitee sends no `Link`: pages are numbered, and `total_page` says where they end.
        path = f"/repos/{repo}/issues" if kind == "issues" else f"/repos/{repo}/issues/comments"
        # Gitee calls the comments' direction "order".
        params: dict[str, Any] = {"sort": "updated", "page": page, "per_page": self.per_page}
        params.update({"state": "all", "direction": "asc"} if kind == "issues" else {"order": "asc"})
        if since is not None:
            params["since"] = since.isoformat()
        response, data = self._get(path, params, expect_list=True, later_page=page > 1)
        return Page(data, self._has_next(response, page, len(data)))

    def _issue_comments(self, repo: str, number: str) -> list[dict]:
        out: list[dict] = []
        page = 1
        while True:
            response, data = self._get(f"/repos/{repo}/issues/{number}/comments",
                                       {"order": "asc", "page": page, "per_page": self.per_page},
                                       expect_list=True, later_page=page > 1)
            out += data
            if not self._has_next(response, page, len(data)):
                return out
            page += 1

    def _issue(self, repo: str, number: str) -> dict | None:
        try:
            _, data = self._get(f"/repos/{repo}/issues/{number}", {})
        except RepoNotFound:
            return None
        if not isinstance(data, dict):
            raise BadPayload(f"Gitee /repos/{repo}/issues/{number} answered 200 with a JSON {type(data).__name__}", 200)
        return data

    def _comment_issue_number(self, comment: dict) -> str | None:
        return _issue_number(comment)

    # -- poll --
    def poll(self, repo: str, etag: str | None = None) -> PollResult:
        """Has `repo` changed since `etag` (Gitee has no ETags: the latest `updated_at` the last poll
        saw)? One request for the most recently updated issue at or after it."""
        check_repo(repo)
        cursor = parse_updated(etag) if etag else None
        if etag and cursor is None:
            raise ValueError(f"Gitee poll cursor must be an ISO 8601 timestamp, got {etag!r}")
        params: dict[str, Any] = {"state": "all", "sort": "updated", "direction": "desc", "page": 1, "per_page": 1}
        if cursor is not None:
            params["since"] = cursor.isoformat()
        with self._errors(repo):
            _, data = self._get(f"/repos/{repo}/issues", params)
        newest = data[0] if isinstance(data, list) and data else None
        newest_ts = parse_updated(newest.get("updated_at")) if isinstance(newest, dict) else None
        if newest_ts is None:
            return PollResult(changed=False, etag=etag, requests=1)
        changed = cursor is None or newest_ts > cursor
        return PollResult(changed=changed, etag=newest_ts.isoformat() if changed else etag, requests=1,
                          newest_updated_at=newest_ts if changed else None)
