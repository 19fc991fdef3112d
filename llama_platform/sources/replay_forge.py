"""Replay forge: a real HTTP server that serves a corpus folder through GitHub's and Gitee's REST APIs.

    python -m llama_platform.sources.replay_forge --corpus DIR --host 127.0.0.1 --port N [--require-token-file F]

GitHub REST v3 lives under `/github` (PyGithub: `base_url=http://HOST:PORT/github`), Gitee v5 under
`/gitee/api/v5`. It implements the parameters and pagination the connectors rely on (state, since,
sort, direction, per_page, page; GitHub `Link` headers, Gitee `total_count`/`total_page`), so the real
clients run unmodified against it. Test helpers live under `/_replay`: `GET /_replay/stats` (request
counts per endpoint), `POST /_replay/reset`, and `POST /_replay/faults` to make the next N matching
requests fail with a given status (for retry tests).

With `--require-token-file`, requests must carry that token (GitHub: `Authorization: token|Bearer T`;
Gitee: `access_token=T`), else 401. The token is read from a file, not argv, so `ps` does not show it;
it is never logged or echoed, and uvicorn's access log (which would print query strings, including
Gitee's access_token) is off.
"""

from __future__ import annotations

import argparse
import hmac
import math
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from llama_platform.services import ServiceProcess, free_port, start_service, wait_http_ok
from llama_platform.sources.corpus import load_corpus

MIN_TS = datetime.min.replace(tzinfo=timezone.utc)
GH_DOCS = "https://docs.github.com/rest"
MAX_PER_PAGE = 100


def _ts(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts if ts.tzinfo else None


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


def _comment_issue_number(source: str, comment: dict) -> str | None:
    if source == "github":
        url = comment.get("issue_url")
        return url.rsplit("/", 1)[-1] if isinstance(url, str) else None
    target = (comment.get("target") or {}).get("issue") or {}
    number = target.get("number")
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
    """The loaded corpus plus the request counters and pending injected faults."""

    def __init__(self, corpus_dir: Path | str, token: str | None = None):
        self.repos: dict[tuple[str, str], RepoData] = {}
        for i, data in enumerate(load_corpus(corpus_dir)):
            rd = RepoData(data["source"], data["repo"], data["issues"], data["comments"])
            for c in rd.comments:
                number = _comment_issue_number(rd.source, c)
                if number is not None:
                    rd.comments_by_issue.setdefault(number, []).append(c)
            rd.repo_object = (_github_repo_object if rd.source == "github" else _gitee_repo_object)(rd.repo, i)
            self.repos[(rd.source, rd.repo.lower())] = rd
        self.token = token
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.status_counts: Counter[str] = Counter()
        self.faults: list[dict] = []

    def repo(self, source: str, owner: str, name: str) -> RepoData | None:
        return self.repos.get((source, f"{owner}/{name}".lower()))

    def take_fault(self, path: str) -> int | None:
        with self.lock:
            for fault in self.faults:
                if fault["path_contains"] in path and fault["remaining"] > 0:
                    fault["remaining"] -= 1
                    return fault["status"]
        return None


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


def _link_header(request: Request, page: int, last: int) -> str | None:
    """RFC 5988 links with absolute URLs built from the request (same host and port the client used)."""
    links = []
    if page < last:
        links += [("next", page + 1), ("last", last)]
    if page > 1:
        links += [("prev", min(page - 1, last)), ("first", 1)]
    if not links:
        return None
    return ", ".join(f'<{request.url.include_query_params(page=p)}>; rel="{rel}"' for rel, p in links)


# ---------------------------------------------------------------------------------------------
# Responses.
# ---------------------------------------------------------------------------------------------


def _gh_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message, "documentation_url": GH_DOCS, "status": str(status)}, status_code=status)


def _gitee_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status)


def _github_headers(state: ReplayState) -> dict[str, str]:
    # Generous and static-ish: PyGithub reads these but a replay never runs out.
    return {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": str(5000 - state.counts.total() % 5000),
            "X-RateLimit-Reset": str(int(time.time()) + 3600), "X-RateLimit-Used": "0", "X-RateLimit-Resource": "core"}


def _github_authorised(state: ReplayState, request: Request) -> bool:
    if state.token is None:
        return True
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() in ("token", "bearer") and hmac.compare_digest(value.strip().encode(), state.token.encode())


def _gitee_authorised(state: ReplayState, request: Request) -> bool:
    if state.token is None:
        return True
    value = request.query_params.get("access_token", "")
    return hmac.compare_digest(value.encode(), state.token.encode())


Handler = Callable[[ReplayState, Request, RepoData], JSONResponse]


def _endpoint(name: str, source: str, handler: Handler) -> Callable:
    """Wrap a handler with counting, fault injection, auth and repo lookup."""
    error = _gh_error if source == "github" else _gitee_error
    authorised = _github_authorised if source == "github" else _gitee_authorised

    async def endpoint(request: Request) -> JSONResponse:
        state: ReplayState = request.app.state.replay
        with state.lock:
            state.counts[name] += 1
        fault = state.take_fault(request.url.path)
        if fault is not None:
            response = error(fault, "Injected fault")
        elif not authorised(state, request):
            response = error(401, "Bad credentials" if source == "github" else "401 Unauthorized: Access token does not exist")
        else:
            p = request.path_params
            rd = state.repo(source, p["owner"], p["repo"])
            if rd is None:
                response = error(404, "Not Found" if source == "github" else "Not Found Project")
            else:
                try:
                    response = handler(state, request, rd)
                except BadParam as exc:
                    response = error(422, f"Validation Failed: {exc}")
        if source == "github":
            response.headers.update(_github_headers(state))
        with state.lock:
            state.status_counts[str(response.status_code)] += 1
        return response

    return endpoint


def _gh_list(request: Request, items: list[dict]) -> JSONResponse:
    chunk, page, total_pages = _page(items, request, default_per_page=30)
    response = JSONResponse(chunk)
    link = _link_header(request, page, max(total_pages, 1))
    if link:
        response.headers["Link"] = link
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
    return _gh_list(request, _select(items, _since(q.get("since")), sort, direction))


def github_repo_comments(state: ReplayState, request: Request, rd: RepoData) -> JSONResponse:
    q = request.query_params
    sort, direction = q.get("sort", "created"), q.get("direction", "asc")
    if sort not in ("created", "updated") or direction not in ("asc", "desc"):
        raise BadParam("sort must be created|updated and direction asc|desc")
    return _gh_list(request, _select(rd.comments, _since(q.get("since")), sort, direction))


def github_issue_comments(state: ReplayState, request: Request, rd: RepoData) -> JSONResponse:
    number = request.path_params["number"]
    if not any(str(i.get("number")) == number for i in rd.issues):
        return _gh_error(404, "Not Found")
    items = _select(rd.comments_by_issue.get(number, []), _since(request.query_params.get("since")), "created", "asc")
    return _gh_list(request, items)


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
                             "by_status": dict(state.status_counts)})


async def replay_reset(request: Request) -> JSONResponse:
    state: ReplayState = request.app.state.replay
    with state.lock:
        state.counts.clear()
        state.status_counts.clear()
        state.faults.clear()
    return JSONResponse({"ok": True})


async def replay_faults(request: Request) -> JSONResponse:
    """Body: {"status": 502, "count": 2, "path_contains": "/issues"}: the next `count` matching requests fail."""
    state: ReplayState = request.app.state.replay
    body = await request.json()
    status, count = int(body.get("status", 502)), int(body.get("count", 1))
    with state.lock:
        state.faults.append({"status": status, "remaining": count, "path_contains": str(body.get("path_contains", ""))})
    return JSONResponse({"ok": True})


def create_app(corpus_dir: Path | str, token: str | None = None) -> Starlette:
    gh = "/github/repos/{owner}/{repo}"
    ge = "/gitee/api/v5/repos/{owner}/{repo}"
    routes = [
        Route("/_replay/health", replay_health),
        Route("/_replay/stats", replay_stats),
        Route("/_replay/reset", replay_reset, methods=["POST"]),
        Route("/_replay/faults", replay_faults, methods=["POST"]),
        Route(gh, _endpoint("github.repo", "github", github_repo)),
        Route(f"{gh}/issues", _endpoint("github.issues", "github", github_issues)),
        Route(f"{gh}/issues/comments", _endpoint("github.repo_comments", "github", github_repo_comments)),
        Route(f"{gh}/issues/{{number}}/comments", _endpoint("github.issue_comments", "github", github_issue_comments)),
        Route(ge, _endpoint("gitee.repo", "gitee", gitee_repo)),
        Route(f"{ge}/issues", _endpoint("gitee.issues", "gitee", gitee_issues)),
        Route(f"{ge}/issues/comments", _endpoint("gitee.repo_comments", "gitee", gitee_repo_comments)),
        Route(f"{ge}/issues/{{number}}/comments", _endpoint("gitee.issue_comments", "gitee", gitee_issue_comments)),
    ]
    app = Starlette(routes=routes)
    app.state.replay = ReplayState(corpus_dir, token)
    return app


# ---------------------------------------------------------------------------------------------
# Process management.
# ---------------------------------------------------------------------------------------------


class ReplayForgeServer:
    """Run the replay forge in its own process (for tests, benchmarks and the CLI).

    `url` is the server root; `github_url` / `gitee_url` are the API base URLs for the connectors.
    """

    def __init__(self, corpus_dir: Path | str, host: str = "127.0.0.1", port: int | None = None,
                 log_dir: Path | str | None = None, require_token: str | None = None):
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

    def start(self, timeout: float = 30.0) -> "ReplayForgeServer":
        cmd = [sys.executable, "-m", "llama_platform.sources.replay_forge", "--corpus", str(self.corpus_dir),
               "--host", self.host, "--port", str(self.port)]
        if self.require_token is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._token_file = self.log_dir / f"replay-token-{self.port}"
            self._token_file.touch(mode=0o600)
            self._token_file.write_text(self.require_token)
            cmd += ["--require-token-file", str(self._token_file)]
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

    def inject_fault(self, status: int = 502, count: int = 1, path_contains: str = "") -> None:
        httpx.post(f"{self.url}/_replay/faults", json={"status": status, "count": count, "path_contains": path_contains},
                   timeout=10).raise_for_status()


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="Serve a corpus folder through GitHub- and Gitee-compatible REST APIs.")
    parser.add_argument("--corpus", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--require-token-file", type=Path, default=None,
                        help="file holding the token clients must send (401 otherwise)")
    args = parser.parse_args(argv)
    token = args.require_token_file.read_text().strip() if args.require_token_file else None
    app = create_app(args.corpus, token)
    n = len(app.state.replay.repos)
    print(f"replay forge: {n} repos from {args.corpus} on http://{args.host}:{args.port}", flush=True)
    # access_log off: it would print request query strings, and Gitee tokens travel in the query.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
