"""Replay forge: a real HTTP server that serves a corpus folder through GitHub's and Gitee's REST APIs.

    python -m llama_platform.replay.forge --corpus DIR --host 127.0.0.1 --port N [--require-token-file F]

GitHub REST v3 lives under `/github` (PyGithub: `base_url=http://HOST:PORT/github`), Gitee v5 under
`/gitee/api/v5`. It implements the parameters and pagination the connectors rely on (state, since,
sort, direction, per_page, page; GitHub `Link` headers, Gitee `total_count`/`total_page`), so the real
clients run unmodified against it. GitHub is also served under `/api/v3` (a GitHub Enterprise
base URL). Like GitHub, it sends a (weak) `ETag` on every GitHub list page and answers a matching
`If-None-Match` with 304, which does not count against the rate limit; and it keeps a rate-limit
budget (`x-ratelimit-limit/remaining/reset/used/resource`), answering 403 (or 429) with
`x-ratelimit-remaining: 0` once it is spent, until the reset.

Test helpers live under `/_replay` (and as `ReplayForgeServer` methods):
  GET  /_replay/stats       requests by endpoint, by status, 304s by endpoint, the rate-limit budget
  POST /_replay/reset       zero the counters, drop faults, refill the budget (the corpus is kept)
  POST /_replay/faults      {"kind", "count", "path_contains", "params", "skip", ...}: the next `count`
                            matching requests (-1: until cleared) fail; kinds: status (any HTTP status,
                            optional retry-after), secondary_limit (403 + retry-after), too_many_requests
                            (429 + retry-after), reset (socket closed with RST, no response), truncate
                            (200 with the JSON body cut short), slow (answer after `delay` seconds),
                            empty (200 with an empty body), not_json (200 with an HTML body, as a proxy
                            sends), null_items (200 with the real page, its first item replaced by null)
  POST /_replay/faults/clear
  POST /_replay/ratelimit   {"limit", "remaining", "reset_in", "window", "status"}
  POST /_replay/mutate      {"source", "repo", "op": add_issue|update_issue|add_comment|update_comment, ...}:
                            change the corpus in memory, bumping updated_at (GitHub-like: a new comment
                            also bumps its issue)
  GET  /_replay/corpus?source=&repo=   the repo's current issues and comments

With `--require-token-file`, requests must carry that token (GitHub: `Authorization: token|Bearer T`;
Gitee: `access_token=T`), else 401. The token is read from a file, not argv, so `ps` does not show it;
it is never logged or echoed, and uvicorn's access log (which would print query strings, including
Gitee's access_token) is off. With `--github-app-id` and `--github-app-public-key-file`, GitHub App
installation tokens are issued (`POST /app/installations/{id}/access_tokens`, JWT checked with the
app's public key) and accepted.

Wire quirks of real forges, per repo, from the corpus file's optional `"wire"` object (GitHub):
  link_path: "repositories"  `Link` URLs use `/repositories/{repo id}/...` paths (served too), as GitHub
                             sends for some repos and endpoints
  link_style: "cursor"       `Link` URLs carry an opaque `after=` cursor and a `page` parameter is refused
                             (422, GitHub's message for cursor-paginated endpoints): only a client that
                             follows the `Link` URL as given can page
  header_case: "title"       header names sent as `Link`, `ETag` (the default is lower case)
Single issues are served too (`GET .../issues/{number}`), as are repo-wide comments whose `issue_url`
ends in the issue's id (older API data): the per-issue comments endpoint still finds them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import hashlib
import hmac
import json
import math
import secrets
import socket
import struct
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import httpx
import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from llama_platform.services import ServiceProcess, free_port, start_service, wait_http_ok
from llama_platform.replay.corpus import load_corpus
from llama_platform.sources.paging import parse_updated

MIN_TS = datetime.min.replace(tzinfo=timezone.utc)
GH_DOCS = "https://docs.github.com/rest"
MAX_PER_PAGE = 100
CST = timezone(timedelta(hours=8))
FAULT_KINDS = ("status", "secondary_limit", "too_many_requests", "reset", "truncate", "slow", "empty", "not_json",
               "null_items")
# What GitHub answers a `page` parameter on an endpoint that pages by cursor.
CURSOR_ONLY_MESSAGE = ("Pagination with the page parameter is not supported for large datasets, "
                       "please use cursor based pagination (after/before)")
NOT_JSON_BODY = b"<html><body><h1>502 Bad Gateway</h1>upstream sent an invalid response</body></html>"
SECONDARY_MESSAGE = ("You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
                     "If you reach out to GitHub Support for help, please include the request ID.")
RAW_SEND = "replay.raw_send"  # scope key: the server's own `send`, for faults that need the socket


# The same lenient forge-timestamp parser the connectors use (None for missing/naive/bad values).
_ts = parse_updated


class BadParam(ValueError):
    pass


def _since(raw: str | None) -> datetime | None:
    if raw is None or raw == "":
        return None
    # A literal "+" in a query string decodes to a space (clients that don't encode "+08:00").
    ts = _ts(raw.replace(" ", "+"))
    if ts is None:
        raise BadParam(f"since must be an ISO 8601 timestamp with a timezone, got {raw!r}")
    return ts


def _int_param(raw: str | None, name: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise BadParam(f"{name} must be an integer, got {raw!r}") from exc


@dataclass
class RepoData:
    source: str
    repo: str
    issues: list[dict]
    comments: list[dict]
    comments_by_issue: dict[str, list[dict]] = field(default_factory=dict)
    repo_object: dict = field(default_factory=dict)
    wire: dict = field(default_factory=dict)  # the corpus file's "wire" quirks (see the module doc)

    def issue_number(self, tail: str) -> str:
        """The issue number a comment's issue reference means: a number, or (older data) the issue's id."""
        numbers = {str(i.get("number")) for i in self.issues}
        if tail in numbers:
            return tail
        return next((str(i.get("number")) for i in self.issues if str(i.get("id")) == tail), tail)


def _comment_issue_number(source: str, comment: dict) -> str | None:
    if source == "github":
        url = comment.get("issue_url")
        return url.rsplit("/", 1)[-1] if isinstance(url, str) else None
    target = (comment.get("target") or {}).get("issue") or {}
    number = target.get("number") if target.get("number") is not None else target.get("id")  # older answers: id only
    return None if number is None else str(number)


def _github_repo_object(repo: str, index: int) -> dict:
    owner, name = repo.split("/")
    api = f"https://api.github.com/repos/{repo}"
    return {
        "id": 700_000_000 + index, "node_id": f"R_kgDO{index:08d}", "name": name, "full_name": repo, "private": False,
        "owner": {"login": owner, "id": 90_000_000 + index, "type": "Organization", "site_admin": False,
                  "url": f"https://api.github.com/users/{owner}", "html_url": f"https://github.com/{owner}"},
        "html_url": f"https://github.com/{repo}", "description": f"Replayed repository {repo}", "fork": False,
        "url": api, "issues_url": f"{api}/issues{{/number}}", "default_branch": "main", "has_issues": True,
        "archived": False, "disabled": False, "visibility": "public",
        "created_at": "2020-01-01T00:00:00Z", "updated_at": "2026-10-01T00:00:00Z", "pushed_at": "2026-10-01T00:00:00Z",
    }


def _gitee_repo_object(repo: str, index: int) -> dict:
    owner, name = repo.split("/")
    return {
        "id": 20_000_000 + index, "full_name": repo, "human_name": repo, "path": name, "name": name,
        "url": f"https://gitee.com/api/v5/repos/{repo}", "html_url": f"https://gitee.com/{repo}.git",
        "namespace": {"type": "group", "name": owner, "path": owner, "html_url": f"https://gitee.com/{owner}"},
        "public": True, "private": False, "fork": False, "has_issues": True, "default_branch": "master",
        "created_at": "2020-01-01T08:00:00+08:00", "updated_at": "2026-10-01T08:00:00+08:00",
    }


class ReplayState:
    """The loaded corpus plus the request counters, the rate-limit budget and pending injected faults."""

    def __init__(self, corpus_dir: Path | str, token: str | None = None, rate_limit: int = 5000,
                 app_id: str | None = None, app_public_key: str | None = None):
        self.repos: dict[tuple[str, str], RepoData] = {}
        for i, data in enumerate(load_corpus(corpus_dir)):
            rd = RepoData(data["source"], data["repo"], data["issues"], data["comments"], wire=data.get("wire") or {})
            for c in rd.comments:
                number = _comment_issue_number(rd.source, c)
                if number is not None:
                    rd.comments_by_issue.setdefault(rd.issue_number(number), []).append(c)
            rd.repo_object = (_github_repo_object if rd.source == "github" else _gitee_repo_object)(rd.repo, i)
            self.repos[(rd.source, rd.repo.lower())] = rd
        self.token = token
        self.app_id = app_id
        self.app_public_key = app_public_key
        self.installation_tokens: set[str] = set()
        self.lock = threading.RLock()
        self.counts: Counter[str] = Counter()
        self.status_counts: Counter[str] = Counter()
        self.not_modified: Counter[str] = Counter()
        self.faults: list[dict] = []
        self.rate = {"limit": rate_limit, "remaining": rate_limit, "window": 3600,
                     "reset": int(time.time()) + 3600, "status": 403}
        self.last_mutation = 0.0

    @property
    def requires_auth(self) -> bool:
        return self.token is not None or self.app_id is not None

    def repo(self, source: str, owner: str, name: str) -> RepoData | None:
        return self.repos.get((source, f"{owner}/{name}".lower()))

    def repo_by_id(self, source: str, repo_id: str) -> RepoData | None:
        return next((rd for (s, _), rd in self.repos.items() if s == source and str(rd.repo_object["id"]) == repo_id), None)

    def take_fault(self, request: Request) -> dict | None:
        path, query = request.url.path, request.query_params
        with self.lock:
            for fault in self.faults:
                if fault["remaining"] == 0 or fault["path_contains"] not in path:
                    continue
                if any(query.get(k) != str(v) for k, v in fault["params"].items()):
                    continue
                if fault["skip"] > 0:
                    fault["skip"] -= 1
                    continue
                if fault["remaining"] > 0:
                    fault["remaining"] -= 1
                fault["fired"] += 1
                return dict(fault)
        return None

    # -- rate limit (GitHub) --
    def rate_check(self) -> bool:
        """Refill the budget if its window passed; True if a request may be served."""
        with self.lock:
            now = int(time.time())
            if now >= self.rate["reset"]:
                self.rate.update(remaining=self.rate["limit"], reset=now + self.rate["window"])
            return self.rate["remaining"] > 0

    def rate_spend(self) -> None:
        with self.lock:
            self.rate["remaining"] = max(self.rate["remaining"] - 1, 0)

    def rate_headers(self) -> dict[str, str]:
        r = self.rate
        return {"X-RateLimit-Limit": str(r["limit"]), "X-RateLimit-Remaining": str(r["remaining"]),
                "X-RateLimit-Reset": str(r["reset"]), "X-RateLimit-Used": str(r["limit"] - r["remaining"]),
                "X-RateLimit-Resource": "core"}

    # -- mutations --
    def now(self) -> datetime:
        """A mutation's timestamp: wall clock, whole seconds, strictly after the previous mutation's."""
        with self.lock:
            ts = max(float(int(time.time())), self.last_mutation + 1)
            self.last_mutation = ts
        return datetime.fromtimestamp(ts, tz=timezone.utc)


# ---------------------------------------------------------------------------------------------
# Filtering, sorting, paging.
# ---------------------------------------------------------------------------------------------


def _select(items: list[dict], since: datetime | None, sort: str, direction: str) -> list[dict]:
    """Filter by `updated_at >= since`, then sort (ties broken by id, as the forges do)."""
    if since is not None:
        items = [x for x in items if (_ts(x.get("updated_at")) or MIN_TS) >= since]
    if sort == "comments":
        key: Callable[[dict], Any] = lambda x: (x.get("comments") or 0, x.get("id") or 0)  # noqa: E731
    else:
        field_name = "updated_at" if sort == "updated" else "created_at"
        key = lambda x: (_ts(x.get(field_name)) or MIN_TS, x.get("id") or 0)  # noqa: E731
    return sorted(items, key=key, reverse=direction == "desc")


def _page(items: list[dict], request: Request, default_per_page: int) -> tuple[list[dict], int, int]:
    """The requested page of `items`, its number, and the number of the last page (at least 1)."""
    q = request.query_params
    per_page = min(max(_int_param(q.get("per_page"), "per_page", default_per_page), 1), MAX_PER_PAGE)
    page = max(_int_param(q.get("page"), "page", 1), 1)
    total_pages = math.ceil(len(items) / per_page)
    return items[(page - 1) * per_page : page * per_page], page, total_pages


def _link_header(url: Any, page: int, last: int) -> str | None:
    """RFC 5988 links with absolute URLs built from the request (same host and port the client used)."""
    links = []
    if page < last:
        links += [("next", page + 1), ("last", last)]
    if page > 1:
        links += [("prev", min(page - 1, last)), ("first", 1)]
    if not links:
        return None
    return ", ".join(f'<{url.include_query_params(page=p)}>; rel="{rel}"' for rel, p in links)


# ---------------------------------------------------------------------------------------------
# Responses.
# ---------------------------------------------------------------------------------------------


def _gh_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message, "documentation_url": GH_DOCS, "status": str(status)}, status_code=status)


def _gitee_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status)


def _github_authorised(state: ReplayState, request: Request) -> bool:
    if not state.requires_auth:
        return True
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    value = value.strip()
    if scheme.lower() not in ("token", "bearer") or not value:
        return False
    if state.token is not None and hmac.compare_digest(value.encode(), state.token.encode()):
        return True
    return any(hmac.compare_digest(value.encode(), t.encode()) for t in state.installation_tokens)


def _gitee_authorised(state: ReplayState, request: Request) -> bool:
    if state.token is None:
        return True
    value = request.query_params.get("access_token", "")
    return hmac.compare_digest(value.encode(), state.token.encode())


Handler = Callable[[ReplayState, Request, RepoData], JSONResponse]


class ResetConnection(Response):
    """Close the client's socket with a TCP RST and send nothing: a connection reset by peer."""

    def __init__(self) -> None:
        super().__init__(b"", 200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_send = scope.get(RAW_SEND)
        transport = getattr(getattr(raw_send, "__self__", None), "transport", None)
        if transport is None:  # not running under uvicorn's h11/httptools protocol: fail loudly instead
            raise RuntimeError("replay forge: cannot reach the socket to reset it")
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, not FIN
        transport.abort()
        await asyncio.sleep(0)  # let the server notice the disconnect, so it does not answer 500


def _truncated(response: Response) -> Response:
    """The same answer with its body cut short (Content-Length matches the short body)."""
    body = response.body[: max(len(response.body) // 2, 1)]
    headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "etag")}
    return Response(body, response.status_code, headers=headers, media_type="application/json")


def _fault_response(fault: dict, error: Callable[[int, str], JSONResponse]) -> Response | None:
    kind = fault["kind"]
    if kind == "reset":
        return ResetConnection()
    if kind in ("truncate", "slow", "null_items"):
        return None  # applied to the real answer
    if kind == "empty":
        return Response(b"", 200, media_type="application/json")
    if kind == "not_json":
        return Response(NOT_JSON_BODY, 200, media_type="text/html")
    if kind == "secondary_limit":
        response = error(fault["status"] or 403, fault["message"] or SECONDARY_MESSAGE)
    elif kind == "too_many_requests":
        response = error(fault["status"] or 429, fault["message"] or "Too Many Requests")
    else:
        response = error(fault["status"] or 502, fault["message"] or "Injected fault")
    if fault["retry_after"] is not None:
        response.headers["Retry-After"] = str(fault["retry_after"])
    return response


def _with_null_item(response: Response) -> Response:
    """The same page with its first item replaced by `null` (as some proxies and old servers send)."""
    items = json.loads(response.body)
    if isinstance(items, list) and items:
        items[0] = None
    headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "etag")}
    return JSONResponse(items, response.status_code, headers=headers)


def _title_case_headers(response: Response) -> None:
    """Header names as HTTP/1.1 servers often send them (`Link`, `ETag`); Starlette lower-cases them."""
    response.raw_headers = [(b"ETag" if k == b"etag" else b"-".join(w.capitalize() for w in k.split(b"-")), v)
                            for k, v in response.raw_headers]


def _etag(response: Response) -> str:
    digest = hashlib.sha1(response.body + response.headers.get("link", "").encode()).hexdigest()
    return f'W/"{digest}"'


def _endpoint(name: str, source: str, handler: Handler, list_endpoint: bool = False) -> Callable:
    """Wrap a handler with counting, fault injection, auth, rate limit, repo lookup and ETags."""
    error = _gh_error if source == "github" else _gitee_error
    authorised = _github_authorised if source == "github" else _gitee_authorised

    async def endpoint(request: Request) -> Response:
        state: ReplayState = request.app.state.replay
        with state.lock:
            state.counts[name] += 1
        fault = state.take_fault(request)
        if fault is not None and fault["kind"] == "slow":
            await asyncio.sleep(fault["delay"])
        response: Response | None = _fault_response(fault, error) if fault is not None else None
        spend = False
        if response is not None:
            pass
        elif not authorised(state, request):
            response = error(401, "Bad credentials" if source == "github" else "401 Unauthorized: Access token does not exist")
        elif source == "github" and not state.rate_check():
            response = error(state.rate["status"], "API rate limit exceeded for 127.0.0.1. (But here's the good news: "
                                                   "Authenticated requests get a higher rate limit.)")
        else:
            p = request.path_params
            rd = state.repo_by_id(source, p["repo_id"]) if "repo_id" in p else state.repo(source, p["owner"], p["repo"])
            spend = source == "github"
            if rd is None:
                response = error(404, "Not Found" if source == "github" else "Not Found Project")
            else:
                try:
                    response = handler(state, request, rd)
                except BadParam as exc:
                    response = error(422, f"Validation Failed: {exc}")
            if source == "github" and list_endpoint and response.status_code == 200:
                etag = _etag(response)
                wanted = {t.strip() for t in request.headers.get("if-none-match", "").split(",")}
                if etag in wanted or "*" in wanted:
                    # Not Modified: no body, and (as on GitHub) free of charge.
                    response, spend = Response(status_code=304), False
                    with state.lock:
                        state.not_modified[name] += 1
                response.headers["ETag"] = etag
        if spend:
            state.rate_spend()
        if source == "github":
            response.headers.update(state.rate_headers())
        if fault is not None and fault["kind"] == "null_items" and response.status_code == 200:
            response = _with_null_item(response)
        if fault is not None and fault["kind"] == "truncate" and not isinstance(response, ResetConnection):
            response = _truncated(response)
        if getattr(request.state, "header_case", None) == "title":
            _title_case_headers(response)
        with state.lock:
            state.status_counts["reset" if isinstance(response, ResetConnection) else str(response.status_code)] += 1
        return response

    return endpoint


def _gh_list(request: Request, items: list[dict], rd: RepoData | None = None) -> JSONResponse:
    wire = rd.wire if rd is not None else {}
    request.state.header_case = wire.get("header_case")
    if wire.get("link_style") == "cursor":
        return _gh_cursor_list(request, items, rd)
    chunk, page, total_pages = _page(items, request, default_per_page=30)
    response = JSONResponse(chunk)
    link = _link_header(_link_base(request, rd), page, max(total_pages, 1))
    if link:
        response.headers["Link"] = link
    return response


def _link_base(request: Request, rd: RepoData | None) -> Any:
    """The URL the `Link` header is built from: the request's, or its `/repositories/{id}/` form."""
    url = request.url
    p = request.path_params
    if rd is not None and rd.wire.get("link_path") == "repositories" and "owner" in p:
        url = url.replace(path=url.path.replace(f"/repos/{p['owner']}/{p['repo']}/", f"/repositories/{rd.repo_object['id']}/"))
    return url


def _gh_cursor_list(request: Request, items: list[dict], rd: RepoData) -> JSONResponse:
    """Cursor paging (`after=`): the `page` parameter is refused, the next page's URL is in `Link` only."""
    q = request.query_params
    if q.get("page") not in (None, ""):
        raise BadParam(CURSOR_ONLY_MESSAGE)
    per_page = min(max(_int_param(q.get("per_page"), "per_page", 30), 1), MAX_PER_PAGE)
    start = 0
    if q.get("after"):
        try:
            start = int(base64.urlsafe_b64decode(q["after"].encode()).decode().removeprefix("offset:"))
        except ValueError as exc:
            raise BadParam(f"after is not a cursor this server issued: {q['after']!r}") from exc
    response = JSONResponse(items[start : start + per_page])
    if start + per_page < len(items):
        cursor = base64.urlsafe_b64encode(f"offset:{start + per_page}".encode()).decode()
        response.headers["Link"] = f'<{_link_base(request, rd).include_query_params(after=cursor)}>; rel="next"'
    return response


def github_repo(state: ReplayState, request: Request, rd: RepoData) -> JSONResponse:
    return JSONResponse(rd.repo_object)


def github_issues(state: ReplayState, request: Request, rd: RepoData) -> JSONResponse:
    q = request.query_params
    st = q.get("state", "open")
    if st not in ("open", "closed", "all"):
        raise BadParam(f"state must be open, closed or all, got {st!r}")
    sort, direction = q.get("sort", "created"), q.get("direction", "desc")
    if sort not in ("created", "updated", "comments") or direction not in ("asc", "desc"):
        raise BadParam("sort must be created|updated|comments and direction asc|desc")
    items = rd.issues if st == "all" else [i for i in rd.issues if i.get("state") == st]
    return _gh_list(request, _select(items, _since(q.get("since")), sort, direction), rd)


def _find_issue(rd: RepoData, number: str) -> dict | None:
    return next((i for i in rd.issues if str(i.get("number")) == number), None)


def github_issue(state: ReplayState, request: Request, rd: RepoData) -> JSONResponse:
    issue = _find_issue(rd, request.path_params["number"])
    return JSONResponse(issue) if issue is not None else _gh_error(404, "Not Found")


def gitee_issue(state: ReplayState, request: Request, rd: RepoData) -> JSONResponse:
    issue = _find_issue(rd, request.path_params["number"])
    return JSONResponse(issue) if issue is not None else _gitee_error(404, "Not Found Issue")


def github_repo_comments(state: ReplayState, request: Request, rd: RepoData) -> JSONResponse:
    q = request.query_params
    sort, direction = q.get("sort", "created"), q.get("direction", "asc")
    if sort not in ("created", "updated") or direction not in ("asc", "desc"):
        raise BadParam("sort must be created|updated and direction asc|desc")
    return _gh_list(request, _select(rd.comments, _since(q.get("since")), sort, direction), rd)


def github_issue_comments(state: ReplayState, request: Request, rd: RepoData) -> JSONResponse:
    number = request.path_params["number"]
    if not any(str(i.get("number")) == number for i in rd.issues):
        return _gh_error(404, "Not Found")
    items = _select(rd.comments_by_issue.get(number, []), _since(request.query_params.get("since")), "created", "asc")
    return _gh_list(request, items, rd)


def _gitee_list(request: Request, items: list[dict]) -> JSONResponse:
    chunk, _, total_page = _page(items, request, default_per_page=20)
    response = JSONResponse(chunk)
    response.headers["total_count"] = str(len(items))
    response.headers["total_page"] = str(total_page)
    return response


GITEE_STATES = ("open", "progressing", "closed", "rejected")


def gitee_repo(state: ReplayState, request: Request, rd: RepoData) -> JSONResponse:
    return JSONResponse(rd.repo_object)


def gitee_issues(state: ReplayState, request: Request, rd: RepoData) -> JSONResponse:
    q = request.query_params
    st = q.get("state", "open")
    if st not in (*GITEE_STATES, "all"):
        raise BadParam(f"state must be one of {GITEE_STATES + ('all',)}, got {st!r}")
    sort, direction = q.get("sort", "created"), q.get("direction", "desc")
    if sort not in ("created", "updated") or direction not in ("asc", "desc"):
        raise BadParam("sort must be created|updated and direction asc|desc")
    items = rd.issues if st == "all" else [i for i in rd.issues if i.get("state") == st]
    return _gitee_list(request, _select(items, _since(q.get("since")), sort, direction))


def gitee_repo_comments(state: ReplayState, request: Request, rd: RepoData) -> JSONResponse:
    q = request.query_params
    # Gitee calls the direction "order" on this endpoint; accept the GitHub spelling too.
    direction = q.get("order") or q.get("direction") or "asc"
    if direction not in ("asc", "desc"):
        raise BadParam("order must be asc or desc")
    return _gitee_list(request, _select(rd.comments, _since(q.get("since")), q.get("sort", "created"), direction))


def gitee_issue_comments(state: ReplayState, request: Request, rd: RepoData) -> JSONResponse:
    number = request.path_params["number"]
    if not any(str(i.get("number")) == number for i in rd.issues):
        return _gitee_error(404, "Not Found Issue")
    q = request.query_params
    items = _select(rd.comments_by_issue.get(number, []), _since(q.get("since")), "created", q.get("order", "asc"))
    return _gitee_list(request, items)


# ---------------------------------------------------------------------------------------------
# Test helpers under /_replay.
# ---------------------------------------------------------------------------------------------


async def replay_health(request: Request) -> JSONResponse:
    state: ReplayState = request.app.state.replay
    return JSONResponse({"ok": True, "repos": sorted(f"{s}:{rd.repo}" for (s, _), rd in state.repos.items())})


async def replay_stats(request: Request) -> JSONResponse:
    state: ReplayState = request.app.state.replay
    with state.lock:
        return JSONResponse({"total": state.counts.total(), "by_endpoint": dict(state.counts),
                             "by_status": dict(state.status_counts), "not_modified": dict(state.not_modified),
                             "rate_limit": dict(state.rate),
                             "faults": [{k: f[k] for k in ("kind", "path_contains", "remaining", "fired")} for f in state.faults]})


async def replay_reset(request: Request) -> JSONResponse:
    state: ReplayState = request.app.state.replay
    with state.lock:
        state.counts.clear()
        state.status_counts.clear()
        state.not_modified.clear()
        state.faults.clear()
        state.rate.update(remaining=state.rate["limit"], reset=int(time.time()) + state.rate["window"], status=403)
    return JSONResponse({"ok": True})


def _fault_spec(body: dict) -> dict:
    kind = str(body.get("kind", "status"))
    if kind not in FAULT_KINDS:
        raise BadParam(f"kind must be one of {FAULT_KINDS}, got {kind!r}")
    params = body.get("params") or {}
    if not isinstance(params, dict):
        raise BadParam("params must be an object")
    retry_after = body.get("retry_after")
    if kind in ("secondary_limit", "too_many_requests") and retry_after is None:
        retry_after = 1
    return {
        "kind": kind,
        "status": int(body["status"]) if body.get("status") is not None else None,
        "remaining": int(body.get("count", 1)),
        "path_contains": str(body.get("path_contains", "")),
        "params": {str(k): str(v) for k, v in params.items()},
        "skip": int(body.get("skip", 0)),
        "retry_after": None if retry_after is None else int(retry_after),
        "delay": float(body.get("delay", 2.0)),
        "message": body.get("message"),
        "fired": 0,
    }


async def replay_faults(request: Request) -> JSONResponse:
    """Body: {"kind": "status", "status": 502, "count": 2, "path_contains": "/issues", "params": {"page": "3"}}."""
    state: ReplayState = request.app.state.replay
    try:
        fault = _fault_spec(await request.json())
    except (BadParam, ValueError, TypeError) as exc:
        return JSONResponse({"message": str(exc)}, status_code=422)
    with state.lock:
        state.faults.append(fault)
    return JSONResponse({"ok": True})


async def replay_faults_clear(request: Request) -> JSONResponse:
    state: ReplayState = request.app.state.replay
    with state.lock:
        state.faults.clear()
    return JSONResponse({"ok": True})


async def replay_ratelimit(request: Request) -> JSONResponse:
    """Body: {"limit": 5000, "remaining": 0, "reset_in": 2, "window": 3600, "status": 403}."""
    state: ReplayState = request.app.state.replay
    body = await request.json()
    with state.lock:
        r = state.rate
        if "limit" in body:
            r["limit"] = int(body["limit"])
        r["remaining"] = min(int(body.get("remaining", r["limit"])), r["limit"])
        if "window" in body:
            r["window"] = int(body["window"])
        # Rounded up: the header is whole epoch seconds, and truncating could make a 1 s window
        # already over by the next request.
        r["reset"] = math.ceil(time.time()) + int(body.get("reset_in", r["window"]))
        r["status"] = int(body.get("status", 403))
        return JSONResponse(dict(r))


def _stamp(source: str, ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ") if source == "github" else ts.astimezone(CST).isoformat(timespec="seconds")


def _mutate(state: ReplayState, rd: RepoData, body: dict) -> dict:
    op = body.get("op")
    ts = _stamp(rd.source, state.now())
    issues = {str(i.get("number")): i for i in rd.issues}
    if op == "update_issue":
        issue = issues.get(str(body.get("number")))
        if issue is None:
            raise BadParam(f"no issue {body.get('number')!r}")
        issue.update(body.get("fields") or {})
        issue["updated_at"] = ts
        return issue
    if op == "add_issue":
        template = next(i for i in reversed(rd.issues) if "pull_request" not in i)
        issue = copy.deepcopy(template)
        if rd.source == "github":
            number: Any = max(int(i["number"]) for i in rd.issues) + 1
        else:
            number = f"IZ{sum(str(i['number']).startswith('IZ') for i in rd.issues):04d}"
        issue.update({"id": max(i["id"] for i in rd.issues) + 1000, "number": number, "state": "open", "comments": 0,
                      "created_at": ts, "updated_at": ts, "title": "New issue", "body": "Added by a test."})
        issue.pop("closed_at" if rd.source == "github" else "finished_at", None)
        issue.update(body.get("fields") or {})
        rd.issues.append(issue)
        return issue
    if op == "add_comment":
        number = str(body.get("number"))
        issue = issues.get(number)
        if issue is None:
            raise BadParam(f"no issue {number!r}")
        comment = copy.deepcopy(rd.comments[-1])
        comment.update({"id": max(c["id"] for c in rd.comments) + 1000, "body": body.get("body", "A new comment."),
                        "created_at": ts, "updated_at": ts})
        if rd.source == "github":
            comment["issue_url"] = comment["issue_url"].rsplit("/", 1)[0] + f"/{number}"
        else:
            comment["target"] = {"issue": {"id": issue["id"], "title": issue.get("title"), "number": issue["number"]},
                                 "pull_request": None}
        rd.comments.append(comment)
        rd.comments_by_issue.setdefault(number, []).append(comment)
        issue["comments"] = int(issue.get("comments") or 0) + 1
        issue["updated_at"] = ts
        return comment
    if op == "update_comment":
        comment = next((c for c in rd.comments if c.get("id") == body.get("id")), None)
        if comment is None:
            raise BadParam(f"no comment {body.get('id')!r}")
        comment.update({"body": body.get("body", comment.get("body")), "updated_at": ts})
        return comment
    raise BadParam("op must be add_issue, update_issue, add_comment or update_comment")


async def replay_mutate(request: Request) -> JSONResponse:
    state: ReplayState = request.app.state.replay
    body = await request.json()
    owner, _, name = str(body.get("repo", "")).partition("/")
    rd = state.repo(str(body.get("source")), owner, name)
    if rd is None:
        return JSONResponse({"message": "no such repo"}, status_code=404)
    try:
        with state.lock:
            return JSONResponse(_mutate(state, rd, body))
    except BadParam as exc:
        return JSONResponse({"message": str(exc)}, status_code=422)


async def replay_corpus(request: Request) -> JSONResponse:
    state: ReplayState = request.app.state.replay
    owner, _, name = request.query_params.get("repo", "").partition("/")
    rd = state.repo(request.query_params.get("source", ""), owner, name)
    if rd is None:
        return JSONResponse({"message": "no such repo"}, status_code=404)
    with state.lock:
        return JSONResponse({"source": rd.source, "repo": rd.repo, "issues": rd.issues, "comments": rd.comments})


async def github_app_token(request: Request) -> JSONResponse:
    """`POST /app/installations/{id}/access_tokens` with the app's JWT: a 1-hour installation token."""
    state: ReplayState = request.app.state.replay
    with state.lock:
        state.counts["github.app_token"] += 1
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if state.app_id is None or scheme.lower() != "bearer":
        return _gh_error(401, "A JSON web token could not be decoded")
    try:
        claims = jwt.decode(value.strip(), state.app_public_key, algorithms=["RS256"], leeway=60,
                            options={"require": ["iat", "exp", "iss"]})
    except jwt.PyJWTError:
        return _gh_error(401, "A JSON web token could not be decoded")
    if str(claims["iss"]) != str(state.app_id):
        return _gh_error(401, "Integration not found")
    token = "ghs_" + secrets.token_hex(18)
    expires = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with state.lock:
        state.installation_tokens.add(token)
    return JSONResponse({"token": token, "expires_at": expires, "permissions": {"issues": "read", "metadata": "read"},
                         "repository_selection": "all"}, status_code=201)


class _KeepRawSend:
    """Outermost ASGI layer: remember the server's own `send` (faults that reset the socket need it)."""

    def __init__(self, app: Starlette):
        self.app = app
        self.state = app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[RAW_SEND] = send
        await self.app(scope, receive, send)


def create_app(corpus_dir: Path | str, token: str | None = None, rate_limit: int = 5000,
               app_id: str | None = None, app_public_key: str | None = None) -> _KeepRawSend:
    ge = "/gitee/api/v5/repos/{owner}/{repo}"
    routes = [
        Route("/_replay/health", replay_health),
        Route("/_replay/stats", replay_stats),
        Route("/_replay/reset", replay_reset, methods=["POST"]),
        Route("/_replay/faults", replay_faults, methods=["POST"]),
        Route("/_replay/faults/clear", replay_faults_clear, methods=["POST"]),
        Route("/_replay/ratelimit", replay_ratelimit, methods=["POST"]),
        Route("/_replay/mutate", replay_mutate, methods=["POST"]),
        Route("/_replay/corpus", replay_corpus),
    ]
    for prefix in ("/github", "/api/v3"):  # api.github.com-style and GitHub Enterprise-style base URLs
        routes.append(Route(f"{prefix}/app/installations/{{installation}}/access_tokens", github_app_token, methods=["POST"]))
        # `/repositories/{id}/...`: the same repo by id, as GitHub's `Link` URLs sometimes name it.
        for gh, by in ((f"{prefix}/repos/{{owner}}/{{repo}}", ""), (f"{prefix}/repositories/{{repo_id}}", ".by_id")):
            routes += [
                Route(gh, _endpoint(f"github.repo{by}", "github", github_repo)),
                Route(f"{gh}/issues", _endpoint(f"github.issues{by}", "github", github_issues, list_endpoint=True)),
                Route(f"{gh}/issues/comments",
                      _endpoint(f"github.repo_comments{by}", "github", github_repo_comments, list_endpoint=True)),
                Route(f"{gh}/issues/{{number}}", _endpoint(f"github.issue{by}", "github", github_issue)),
                Route(f"{gh}/issues/{{number}}/comments",
                      _endpoint(f"github.issue_comments{by}", "github", github_issue_comments, list_endpoint=True)),
            ]
    routes += [
        Route(ge, _endpoint("gitee.repo", "gitee", gitee_repo)),
        Route(f"{ge}/issues", _endpoint("gitee.issues", "gitee", gitee_issues)),
        Route(f"{ge}/issues/comments", _endpoint("gitee.repo_comments", "gitee", gitee_repo_comments)),
        Route(f"{ge}/issues/{{number}}", _endpoint("gitee.issue", "gitee", gitee_issue)),
        Route(f"{ge}/issues/{{number}}/comments", _endpoint("gitee.issue_comments", "gitee", gitee_issue_comments)),
    ]
    app = Starlette(routes=routes)
    app.state.replay = ReplayState(corpus_dir, token, rate_limit=rate_limit, app_id=app_id, app_public_key=app_public_key)
    return _KeepRawSend(app)


# ---------------------------------------------------------------------------------------------
# Process management.
# ---------------------------------------------------------------------------------------------


class ReplayForgeServer:
    """Run the replay forge in its own process (for tests, benchmarks and the CLI).

    `url` is the server root; `github_url` / `gitee_url` are the API base URLs for the connectors.
    """

    def __init__(self, corpus_dir: Path | str, host: str = "127.0.0.1", port: int | None = None,
                 log_dir: Path | str | None = None, require_token: str | None = None, rate_limit: int = 5000,
                 github_app: tuple[str, str] | None = None):
        """`github_app`: (app id, the app's public key PEM) to issue and accept installation tokens."""
        self.rate_limit = rate_limit
        self.github_app = github_app
        self.corpus_dir = Path(corpus_dir)
        self.host = host
        self.port = port or free_port(host)
        self._tmp = tempfile.TemporaryDirectory(prefix="replay-forge-") if log_dir is None else None
        self.log_dir = Path(log_dir) if log_dir is not None else Path(self._tmp.name)
        self.require_token = require_token
        self.process: ServiceProcess | None = None
        self._token_file: Path | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def github_url(self) -> str:
        return f"{self.url}/github"

    @property
    def gitee_url(self) -> str:
        return f"{self.url}/gitee/api/v5"

    @property
    def enterprise_url(self) -> str:
        """The same GitHub API under a GitHub Enterprise-style base URL (`https://HOST/api/v3`)."""
        return f"{self.url}/api/v3"

    def start(self, timeout: float = 30.0) -> "ReplayForgeServer":
        cmd = [sys.executable, "-m", "llama_platform.replay.forge", "--corpus", str(self.corpus_dir),
               "--host", self.host, "--port", str(self.port)]
        if self.require_token is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._token_file = self.log_dir / f"replay-token-{self.port}"
            self._token_file.touch(mode=0o600)
            self._token_file.write_text(self.require_token)
            cmd += ["--require-token-file", str(self._token_file)]
        if self.rate_limit != 5000:
            cmd += ["--rate-limit", str(self.rate_limit)]
        if self.github_app is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            key_file = self.log_dir / f"replay-app-key-{self.port}.pem"
            key_file.write_text(self.github_app[1])
            cmd += ["--github-app-id", str(self.github_app[0]), "--github-app-public-key-file", str(key_file)]
        self.process = start_service("replay-forge", cmd, self.log_dir / f"replay-forge-{self.port}.log")
        self.process.url = self.url
        try:
            wait_http_ok(f"{self.url}/_replay/health", self.process, timeout=timeout)
        except Exception:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None
        if self._token_file is not None:
            self._token_file.unlink(missing_ok=True)
            self._token_file = None

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> "ReplayForgeServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> dict:
        return httpx.get(f"{self.url}/_replay/stats", timeout=10).json()

    def reset(self) -> None:
        httpx.post(f"{self.url}/_replay/reset", timeout=10).raise_for_status()

    def _post(self, path: str, body: dict | None = None) -> Any:
        response = httpx.post(f"{self.url}/_replay/{path}", json=body or {}, timeout=10)
        if response.status_code >= 400:
            raise ValueError(f"replay forge /_replay/{path}: {response.status_code} {response.text}")
        return response.json()

    def inject_fault(self, status: int | None = 502, count: int = 1, path_contains: str = "", *, kind: str = "status",
                     params: dict | None = None, skip: int = 0, retry_after: int | None = None, delay: float = 2.0,
                     message: str | None = None) -> None:
        """The next `count` requests (-1: until `clear_faults`) whose path contains `path_contains` and whose
        query has `params` fail as `kind` (see the module doc), after `skip` matching ones pass."""
        self._post("faults", {"kind": kind, "status": status if kind == "status" else None, "count": count,
                              "path_contains": path_contains, "params": params or {}, "skip": skip,
                              "retry_after": retry_after, "delay": delay, "message": message})

    def clear_faults(self) -> None:
        self._post("faults/clear")

    def set_rate_limit(self, remaining: int, reset_in: int = 3600, limit: int | None = None, status: int = 403,
                       window: int | None = None) -> dict:
        body: dict[str, Any] = {"remaining": remaining, "reset_in": reset_in, "status": status}
        if limit is not None:
            body["limit"] = limit
        if window is not None:
            body["window"] = window
        return self._post("ratelimit", body)

    def mutate(self, source: str, repo: str, op: str, **fields: Any) -> dict:
        """Change the served corpus: op = add_issue(fields) | update_issue(number, fields) |
        add_comment(number, body) | update_comment(id, body). Returns the new or changed object."""
        return self._post("mutate", {"source": source, "repo": repo, "op": op, **fields})

    def snapshot(self, source: str, repo: str) -> dict:
        """The repo's current issues and comments, as served."""
        response = httpx.get(f"{self.url}/_replay/corpus", params={"source": source, "repo": repo}, timeout=30)
        response.raise_for_status()
        return response.json()


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="Serve a corpus folder through GitHub- and Gitee-compatible REST APIs.")
    parser.add_argument("--corpus", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--require-token-file", type=Path, default=None,
                        help="file holding the token clients must send (401 otherwise)")
    parser.add_argument("--rate-limit", type=int, default=5000, help="GitHub requests per hour (x-ratelimit-limit)")
    parser.add_argument("--github-app-id", default=None, help="issue installation tokens for this GitHub App id")
    parser.add_argument("--github-app-public-key-file", type=Path, default=None, help="the app's public key (PEM)")
    args = parser.parse_args(argv)
    token = args.require_token_file.read_text().strip() if args.require_token_file else None
    public_key = args.github_app_public_key_file.read_text() if args.github_app_public_key_file else None
    if (args.github_app_id is None) != (public_key is None):
        parser.error("--github-app-id and --github-app-public-key-file go together")
    app = create_app(args.corpus, token, rate_limit=args.rate_limit, app_id=args.github_app_id, app_public_key=public_key)
    n = len(app.state.replay.repos)
    print(f"replay forge: {n} repos from {args.corpus} on http://{args.host}:{args.port}", flush=True)
    # access_log off: it would print request query strings, and Gitee tokens travel in the query.
    # httptools: ResetConnection reaches the socket through this protocol's `send`.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False, http="httptools",
                timeout_graceful_shutdown=1)  # don't wait out a "slow" fault's answer on stop


if __name__ == "__main__":
    main()
