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

`poll(repo, etag)` asks for the most recently updated issue with `If-None-Match`: a 304 answer
means nothing changed and costs no rate limit.
"""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Iterator
from urllib.parse import urlparse

import github
import requests
from github import Auth, Github, GithubException

from llama_platform.sources.forge import (
    ForgeAuthError,
    ForgeError,
    OnWait,
    PollResult,
    RepoNotFound,
    check_repo,
    redact,
)
from llama_platform.sources.paging import Page, PagedForge
from llama_platform.sources.resilience import RequestPolicy, Retry

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_NEXT_LINK = re.compile(r'<[^>]+>;\s*rel="next"')


def _issue_number(comment: dict) -> str | None:
    url = comment.get("issue_url")
    if not isinstance(url, str) or "/issues/" not in url:
        return None
    return url.rsplit("/", 1)[-1]


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
    def _get(self, path: str, params: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[dict, Any]:
        """GET with retries; returns (response headers, JSON); JSON is None for a 304."""

        def attempt() -> tuple[dict, Any]:
            try:
                resp_headers, data = self._gh.requester.requestJsonAndCheck("GET", path, parameters=params,
                                                                           headers=dict(headers or {}))
            except GithubException as exc:
                raise self._classify(path, exc) from None
            except ValueError as exc:  # json.JSONDecodeError: a truncated or garbled body
                raise Retry(f"invalid JSON body ({type(exc).__name__})",
                            ForgeError(self._redact(f"GitHub {path}: invalid JSON body: {exc}"))) from None
            except requests.exceptions.RequestException as exc:  # reset, timeout, refused, truncated stream
                name = type(exc).__name__
                raise Retry(name, ForgeError(self._redact(f"GitHub request {path} failed: {name}: {exc}"))) from None
            self.policy.observe(resp_headers)
            return resp_headers, data

        return self.policy.call(attempt)

    def _classify(self, path: str, exc: GithubException) -> Exception:
        message = exc.data.get("message") if isinstance(exc.data, dict) else None
        text = self._redact(f"GitHub {exc.status} for {path}: {message or exc.message or 'request failed'}")
        error: ForgeError
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
    def _list_page(self, repo: str, kind: str, since: datetime | None, page: int) -> Page:
        path = f"/repos/{repo}/issues" if kind == "issues" else f"/repos/{repo}/issues/comments"
        params: dict[str, Any] = {"sort": "updated", "direction": "asc", "per_page": self.per_page, "page": page}
        if kind == "issues":
            params["state"] = "all"
        if since is not None:
            params["since"] = since.strftime("%Y-%m-%dT%H:%M:%SZ")
        headers, data = self._get(path, params)
        if not isinstance(data, list):
            raise ForgeError(f"GitHub {path} page {page}: expected a JSON list, got {type(data).__name__}")
        return Page(data, bool(_NEXT_LINK.search(headers.get("link", ""))))

    def _issue_comments(self, repo: str, number: str) -> list[dict]:
        out: list[dict] = []
        page = 1
        while True:
            headers, data = self._get(f"/repos/{repo}/issues/{number}/comments", {"per_page": self.per_page, "page": page})
            out += data or []
            if not _NEXT_LINK.search(headers.get("link", "")):
                return out
            page += 1

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
        return PollResult(changed=etag is None or new_etag != etag, etag=new_etag, requests=1)

