"""GitHub connector on PyGithub: a repo's issues (PRs included) with their comments, as raw rows.

The fetch itself (two sorted passes over `GET /repos/{o}/{r}/issues/comments` and
`GET /repos/{o}/{r}/issues?state=all&sort=updated&direction=asc`, joined, checkpointed) lives in
`paging.PagedForge`; this module speaks GitHub: pages through PyGithub's `Requester` (auth, GitHub
Enterprise base URLs `https://HOST/api/v3`, `Link` headers), token or GitHub App installation auth,
and GitHub's answers to errors and rate limits, classified for `resilience.RequestPolicy`:
5xx, connection resets, timeouts and truncated JSON bodies are retried with backoff; 403/429 rate
limits wait what the forge asks (`retry-after`, `x-ratelimit-reset`) up to `max_wait`, else raise
`RateLimitExhausted`. PyGithub's own retry (which would sleep on rate limits silently) is off.

The JSON is kept lossless: list pages are read as plain dicts, never as `Issue` objects (whose
`raw_data` would cost one extra "complete the object" GET per issue).

Where PyGithub's requester is not enough, this layer does the work (on `Requester.requestJson`, which
keeps PyGithub's auth, throttle, base URL and connection handling but returns the raw status and body):
  * `requestJsonAndCheck` turns an empty 200 body into `None` and a non-JSON one into
    `{"data": "<html>..."}` (and adds a `url` key to single objects): we parse the body ourselves, so
    an empty or non-JSON 200 is retried and then reported as what it is (`BadPayload`), as are
    `null` items in a list page;
  * pages are followed by the `Link` header's `rel="next"` URL as given (parsed with requests'
    `parse_header_links`; PyGithub lower-cases header names), not by computing `page=N+1`: GitHub's
    links may be cursors (`after=`) or `/repositories/{id}/...` paths;
  * a 404 on a later page is `PageNotFound`, not `RepoNotFound` (the repo answered page 1).

`poll(repo, etag)` asks for the most recently updated issue with `If-None-Match`: a 304 answer
means nothing changed and costs no rate limit.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Iterator
from urllib.parse import parse_qs, urlparse

import github
import requests
from github import Auth, Github, GithubException

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

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _issue_number(comment: dict) -> str | None:
    """The tail of the comment's `issue_url`: the issue's number (or, in older data, its id)."""
    url = comment.get("issue_url")
    if not isinstance(url, str) or "/issues/" not in url:
        return None
    return url.rsplit("/", 1)[-1]


def next_link(headers: dict) -> str | None:
    """The `rel="next"` URL of a `Link` header, as given (any header-name case)."""
    value = next((v for k, v in headers.items() if k.lower() == "link"), None)
    if not value:
        return None
    return next((link["url"] for link in requests.utils.parse_header_links(value) if link.get("rel") == "next"), None)


class GitHubForge(PagedForge):
    source = "github"

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        per_page: int = 100,
        seconds_between_requests: float | None = None,
        timeout: float = 30.0,
        retries: int = 4,
        *,
        app_id: int | str | None = None,
        app_private_key: str | None = None,
        installation_id: int | None = None,
        max_wait: float = 60.0,
        backoff: float = 0.5,
        on_wait: OnWait | None = None,
    ):
        """Token auth (`token`) or GitHub App auth (`app_id` + `app_private_key` PEM + `installation_id`).

        `seconds_between_requests`: PyGithub's politeness throttle; None = PyGithub's default
        (0.25 s) for a real forge and 0 for a loopback one (the replay forge).
        `max_wait`: the longest single wait (rate limit or backoff) before giving up with
        `RateLimitExhausted`; `on_wait(seconds, reason)` hears about every wait.
        """
        if not 1 <= per_page <= 100:
            raise ValueError(f"per_page must be 1..100, got {per_page}")
        self.base_url = base_url.rstrip("/")
        self.per_page = per_page
        self._token = token
        self._private_key = app_private_key
        self.policy = RequestPolicy("GitHub", retries=retries, backoff=backoff, max_wait=max_wait, on_wait=on_wait)
        if seconds_between_requests is None:
            loopback = urlparse(self.base_url).hostname in LOOPBACK_HOSTS
            seconds_between_requests = 0.0 if loopback else github.Consts.DEFAULT_SECONDS_BETWEEN_REQUESTS
        self._gh = Github(
            base_url=self.base_url,
            auth=self._auth(token, app_id, app_private_key, installation_id),
            per_page=per_page,
            lazy=True,
            retry=None,  # RequestPolicy retries: bounded, reported waits
            timeout=int(max(timeout, 1)),
            seconds_between_requests=seconds_between_requests,
        )

    @staticmethod
    def _auth(token, app_id, private_key, installation_id) -> Auth.Auth | None:
        app = (app_id, private_key, installation_id)
        if any(x is not None for x in app):
            if token:
                raise ValueError("give a token or GitHub App credentials, not both")
            if any(x in (None, "") for x in app):
                raise ValueError("GitHub App auth needs app_id, app_private_key and installation_id")
            return Auth.AppAuth(app_id, private_key).get_installation_auth(int(installation_id))
        return Auth.Token(token) if token else None

    def _redact(self, text: str) -> str:
        return redact(text, self._token, self._private_key)

    # -- one request --
    def _get(self, path: str, params: dict[str, Any], headers: dict[str, str] | None = None, *,
             expect_list: bool = False, later_page: bool = False) -> tuple[dict, Any]:
        """GET with retries; returns (response headers, JSON); JSON is None for a 304.

        `path` may be a URL the forge gave (a `Link`); `expect_list`: the answer must be a list of
        objects; `later_page`: a 404 means the page, not the repo, is missing."""
        requester = self._gh.requester
        url = urlparse(path)
        page = params.get("page") or parse_qs(url.query).get("page", [None])[0]
        where = url.path + (f" page {page}" if page else "")  # never the query: it may hold a cursor

        def bad(what: str) -> Retry:
            return Retry(what, BadPayload(self._redact(f"GitHub {where} answered 200 with {what}"), 200))

        def attempt() -> tuple[dict, Any]:
            try:
                status, resp_headers, body = requester.requestJson("GET", path, parameters=params,
                                                                   headers=dict(headers or {}))
            except GithubException as exc:  # from PyGithub itself, e.g. a refused GitHub App token exchange
                raise self._classify(where, exc, later_page) from None
            except requests.exceptions.RequestException as exc:  # reset, timeout, refused, truncated stream
                name = type(exc).__name__
                raise Retry(name, ForgeError(self._redact(f"GitHub request {where} failed: {name}: {exc}"))) from None
            if status >= 400:
                try:
                    data = json.loads(body) if body else None
                except ValueError:
                    data = {"message": body[:200]}
                raise self._classify(where, requester.createException(status, resp_headers, data), later_page) from None
            if status == 304:
                return resp_headers, None
            if not body.strip():
                raise bad("an empty body")
            try:
                data = json.loads(body)
            except ValueError as exc:  # a truncated or garbled body, or not JSON at all (a proxy's HTML page)
                if body.lstrip()[:1] in ("{", "["):
                    raise Retry(f"invalid JSON body ({type(exc).__name__})",
                                ForgeError(self._redact(f"GitHub {where}: invalid JSON body: {exc}"))) from None
                kind = resp_headers.get("content-type", "unknown content type")
                raise bad(f"a body that is not JSON ({kind})") from None
            if expect_list and not isinstance(data, list):
                raise bad(f"a JSON {type(data).__name__} where a list belongs")
            if expect_list and (n := null_items(data)):
                raise bad(f"{n} null item(s) in a list of {len(data)}")
            self.policy.observe(resp_headers)
            return resp_headers, data

        return self.policy.call(attempt)

    def _classify(self, path: str, exc: GithubException, later_page: bool = False) -> Exception:
        message = exc.data.get("message") if isinstance(exc.data, dict) else None
        text = self._redact(f"GitHub {exc.status} for {path}: {message or exc.message or 'request failed'}")
        error: ForgeError
        if exc.status == 404 and later_page:
            # The repo answered the first page: this page is gone (or a proxy lost it). Retried, as a
            # replica may lag; then named for what it is.
            return Retry("HTTP 404 on a later page", PageNotFound(f"{text} (a later page of a list whose first page "
                                                                  "was served)", exc.status))
        if exc.status == 404:
            return RepoNotFound(text, exc.status)
        if exc.status in (401, 403):
            error = ForgeAuthError(text, exc.status)
        else:
            error = ForgeError(text, exc.status)
        retry = self.policy.rate_limited(exc.status, exc.headers or {}, message, ForgeError(text, exc.status), where=path)
        if retry is not None:
            return retry
        if exc.status >= 500:
            return Retry(f"HTTP {exc.status}", error)
        return error

    @contextmanager
    def _errors(self, repo: str) -> Iterator[None]:
        try:
            yield
        except (ForgeError, ValueError):
            raise
        except Exception as exc:  # noqa: BLE001 - anything else from the HTTP stack, redacted
            raise ForgeError(self._redact(f"GitHub request for {repo} failed: {type(exc).__name__}: {exc}")) from None

    # -- PagedForge hooks --
    def _list_page(self, repo: str, kind: str, since: datetime | None, page: int, url: str | None = None) -> Page:
        if url is not None:  # the forge's own link to this page, as given
            headers, data = self._get(url, {}, expect_list=True, later_page=True)
        else:
            path = f"/repos/{repo}/issues" if kind == "issues" else f"/repos/{repo}/issues/comments"
            # No `page` parameter on the first page: cursor-paged endpoints refuse it.
            params: dict[str, Any] = {"sort": "updated", "direction": "asc", "per_page": self.per_page}
            if page > 1:  # defensive: the walk follows links, so only a forge without `Link` headers gets here
                params["page"] = page
            if kind == "issues":
                params["state"] = "all"
            if since is not None:
                params["since"] = since.strftime("%Y-%m-%dT%H:%M:%SZ")
            headers, data = self._get(path, params, expect_list=True, later_page=page > 1)
        link = next_link(headers)
        return Page(data, link is not None, link)

    def _issue_comments(self, repo: str, number: str) -> list[dict]:
        out: list[dict] = []
        headers, data = self._get(f"/repos/{repo}/issues/{number}/comments", {"per_page": self.per_page}, expect_list=True)
        while True:
            out += data
            link = next_link(headers)
            if link is None:
                return out
            headers, data = self._get(link, {}, expect_list=True, later_page=True)

    def _issue(self, repo: str, number: str) -> dict | None:
        try:
            _, data = self._get(f"/repos/{repo}/issues/{number}", {})
        except RepoNotFound:
            return None
        if not isinstance(data, dict):
            raise BadPayload(f"GitHub /repos/{repo}/issues/{number} answered 200 with a JSON {type(data).__name__}", 200)
        return data

    def _comment_issue_number(self, comment: dict) -> str | None:
        return _issue_number(comment)

    # -- poll --
    def poll(self, repo: str, etag: str | None = None) -> PollResult:
        """Has `repo` changed since the poll that returned `etag`? One conditional request: the most
        recently updated issue/PR; GitHub answers 304 (free) when the list is unchanged."""
        check_repo(repo)
        params = {"state": "all", "sort": "updated", "direction": "desc", "per_page": 1}
        with self._errors(repo):
            headers, data = self._get(f"/repos/{repo}/issues", params, {"If-None-Match": etag} if etag else None)
        if data is None:  # 304 Not Modified
            return PollResult(changed=False, etag=etag, requests=1)
        new_etag = headers.get("etag")
        newest = parse_updated(data[0].get("updated_at")) if isinstance(data, list) and data and isinstance(data[0], dict) else None
        return PollResult(changed=etag is None or new_etag != etag, etag=new_etag, requests=1, newest_updated_at=newest)

