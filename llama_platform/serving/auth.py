"""The endpoint's front door: API keys and service tokens with scopes, rate limits, a body limit, metrics.

Keys are stored hashed. A keys file (the `llama-platform-serving-keys` Secret mounted as a file, or
the same JSON in an env var) holds

    {"keys": [{"id": "ci-bot", "hash": "sha256:<hex>", "scopes": ["predict"],
               "kind": "api_key", "rate_per_s": 20, "burst": 40, "expires_at": "2027-01-01T00:00:00Z"}]}

`kind` is `api_key` (people, API clients) or `service_token` (Prometheus, the canary checker);
both work the same way, tokens usually carry `expires_at`. Scopes: `predict` (inference, model
listings, the page's data), `metrics` (/metrics and nothing else: Prometheus' scrape token) and
`admin` (the model repository; implies predict and metrics).
The file is re-read when it changes (a Secret update swaps the mounted file), so keys rotate
without a restart. A plain key in LLAMA_PLATFORM_API_KEY (the local profile) is hashed on load
and gets every scope.

sha256 rather than a slow password hash: keys are 32 random bytes (see `new_key`), so there is
nothing to brute-force, and the check runs on every request. Keys, tokens and request bodies are
never logged; log lines name the key id only.

A plain ASGI middleware (not Starlette's BaseHTTPMiddleware) so it wraps every route KServe
registers, streaming ones included.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import logging
import math
import os
import re
import secrets
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llama_platform import settings
from llama_platform.serving import metrics

log = logging.getLogger(__name__)

SCOPES = ("predict", "metrics", "admin")
KINDS = ("api_key", "service_token")

# Probes must work without a key (kubelet, load balancers, wait_http_ok): the server root, the
# V2 server health routes, per-model readiness, and the page's HTML shell (it holds no data: every
# call it makes carries the key the maintainer types in). Everything else needs a key.
OPEN_PATHS = re.compile(r"^/$|^/v2/health/(live|ready)$|^/v2/models/[^/]+(/versions/[^/]+)?/ready$|^/ui/?$")
# /metrics needs the metrics scope (a scrape token reads it and nothing else), these routes admin;
# every other protected route needs predict.
METRICS_PATHS = re.compile(r"^/metrics$")
ADMIN_PATHS = re.compile(r"^/v2/repository/|^/v1/models/[^/]+:(load|unload)$")


class KeyFileError(ValueError):
    """The keys file is malformed; the message says which entry and why (never a hash or key)."""


@dataclass(frozen=True)
class ApiKey:
    id: str
    digest: str  # hex sha256 of the key
    scopes: frozenset[str]
    kind: str = "api_key"
    rate_per_s: float | None = None
    burst: float | None = None
    expires_at: datetime | None = None

    def allows(self, scope: str) -> bool:
        # admin implies every scope; predict and metrics imply nothing else.
        return "admin" in self.scopes or scope in self.scopes

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and (now or datetime.now(timezone.utc)) >= self.expires_at


def hash_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return "lpk_" + secrets.token_urlsafe(32)


def parse_keys(doc: object, source: str) -> list[ApiKey]:
    entries = doc.get("keys") if isinstance(doc, dict) else doc
    if not isinstance(entries, list):
        raise KeyFileError(f"{source}: expected {{\"keys\": [...]}} or a list of key entries")
    keys, seen = [], set()
    for i, e in enumerate(entries):
        where = f"{source}: keys[{i}]"
        if not isinstance(e, dict):
            raise KeyFileError(f"{where} must be an object")
        kid, h, scopes = e.get("id"), e.get("hash"), e.get("scopes")
        if not isinstance(kid, str) or not kid:
            raise KeyFileError(f"{where}.id must be a non-empty string")
        if kid in seen:
            raise KeyFileError(f"{where}.id {kid!r} is duplicated")
        seen.add(kid)
        if not isinstance(h, str) or not re.fullmatch(r"sha256:[0-9a-f]{64}", h):
            raise KeyFileError(f"{where} ({kid}).hash must be 'sha256:' + 64 hex digits")
        if not isinstance(scopes, list) or not scopes or any(s not in SCOPES for s in scopes):
            raise KeyFileError(f"{where} ({kid}).scopes must be a non-empty list of {list(SCOPES)}")
        kind = e.get("kind", "api_key")
        if kind not in KINDS:
            raise KeyFileError(f"{where} ({kid}).kind must be one of {list(KINDS)}")
        expires = e.get("expires_at")
        if expires is not None:
            try:
                expires = datetime.fromisoformat(str(expires).replace("Z", "+00:00"))
            except ValueError:
                raise KeyFileError(f"{where} ({kid}).expires_at must be an ISO 8601 time") from None
            if expires.tzinfo is None:
                expires = expires.replace(tzinfo=timezone.utc)
        rate, burst = e.get("rate_per_s"), e.get("burst")
        for name, v in (("rate_per_s", rate), ("burst", burst)):
            if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0):
                raise KeyFileError(f"{where} ({kid}).{name} must be a positive number")
        keys.append(ApiKey(kid, h.split(":", 1)[1], frozenset(scopes), kind, rate, burst, expires))
    return keys


class KeyStore:
    """The accepted keys, from a file (re-read when it changes), a JSON string and/or one plain key."""

    def __init__(self, path: str | Path | None = None, keys_json: str | None = None,
                 plain_key: str | None = None, check_every_s: float = 1.0):
        self.path = Path(path) if path else None
        self._static: list[ApiKey] = []
        if keys_json:
            try:
                self._static += parse_keys(json.loads(keys_json), "keys JSON")
            except json.JSONDecodeError as exc:
                raise KeyFileError(f"keys JSON is not valid JSON: {exc.msg} at line {exc.lineno}") from None
        if plain_key:
            self._static.append(ApiKey("env-key", hash_key(plain_key).split(":", 1)[1], frozenset(SCOPES)))
        self.check_every_s = check_every_s
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._checked = 0.0
        self._by_digest: dict[str, ApiKey] = {}
        self.reload(force=True)
        if not self._by_digest:
            raise KeyFileError("no API keys configured: the server refuses to start unprotected")

    def __repr__(self) -> str:  # never show hashes, even in debug output
        return f"KeyStore(path={self.path}, keys={len(self._by_digest)})"

    @property
    def key_ids(self) -> list[str]:
        return sorted(k.id for k in self._by_digest.values())

    def reload(self, force: bool = False) -> bool:
        """Re-read the file if it changed; True when the key set was replaced. A malformed new file
        is reported and the previous keys stay (a bad rotation must not lock everyone out)."""
        keys = list(self._static)
        if self.path is not None:
            try:
                st = self.path.stat()
                stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            except FileNotFoundError:
                stamp = None
            if not force and stamp == self._stamp:
                return False
            if stamp is not None:
                try:
                    keys += parse_keys(json.loads(self.path.read_text()), str(self.path))
                except (KeyFileError, json.JSONDecodeError, OSError) as exc:
                    if force:
                        raise KeyFileError(str(exc)) from None
                    log.error("keys file %s not reloaded, keeping %d keys: %s", self.path, len(self._by_digest), exc)
                    self._stamp = stamp
                    return False
            self._stamp = stamp
        self._by_digest = {k.digest: k for k in keys}
        log.info("serving keys loaded: %d (%s)", len(keys), ", ".join(sorted(k.id for k in keys)))
        return True

    def lookup(self, presented: str | None) -> ApiKey | None:
        now = time.monotonic()
        if self.path is not None and now - self._checked >= self.check_every_s:
            with self._lock:
                self._checked = now
                self.reload()
        if not presented:
            return None
        digest = hashlib.sha256(presented.encode("utf-8")).hexdigest()
        key = self._by_digest.get(digest)
        # The dict lookup is on a hash of a random key; compare_digest keeps the final check constant-time.
        if key is None or not hmac.compare_digest(key.digest, digest):
            return None
        return key


def keys_from_env() -> KeyStore:
    """The keys every runtime serves with: the mounted Secret file (re-read on change), its JSON in
    an env var, and/or one plain key (the local profile). Raises KeyFileError when none is set."""
    return KeyStore(
        path=settings.secret_from_env(settings.SERVING_KEYS_FILE_ENV),
        keys_json=settings.secret_from_env(settings.SERVING_KEYS_ENV),
        plain_key=settings.secret_from_env(settings.SERVING_API_KEY_ENV),
    )


class TokenBucket:
    """Per-key token buckets (rate tokens/s, up to burst). Hand-written: a few lines, in-process;
    a shared limiter (Redis) would be needed only across replicas, where the mesh limits instead."""

    def __init__(self, rate_per_s: float, burst: float):
        self.rate, self.burst = rate_per_s, burst
        self._state: dict[str, tuple[float, float]] = {}

    def take(self, key: ApiKey, now: float | None = None) -> float:
        """0 when allowed, else the seconds until a token is available."""
        rate = key.rate_per_s or self.rate
        burst = key.burst or self.burst
        now = time.monotonic() if now is None else now
        tokens, last = self._state.get(key.id, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens >= 1:
            self._state[key.id] = (tokens - 1, now)
            return 0.0
        self._state[key.id] = (tokens, now)
        return (1 - tokens) / rate


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused before the model: the status, the message and the headers to send."""

    status: int
    message: str
    headers: dict[str, str] | None = None


class Gate:
    """Key + scope + rate limit for one request, whatever server carries it: the KServe app's ASGI
    middleware below and the MLServer runtime (mlserver_runtime.py) ask the same questions and give
    the same answers (status, message, headers), and count refusals in the same metric."""

    def __init__(self, keys: KeyStore, rate_per_s: float = 50.0, burst: float = 100.0):
        self.keys = keys
        self.limiter = TokenBucket(rate_per_s, burst)

    def __repr__(self) -> str:
        return f"Gate(keys={self.keys!r})"

    def admit(self, needed: str, presented: str | None) -> ApiKey | Refusal:
        key = self.keys.lookup(presented)
        if key is None or key.expired():
            metrics.REJECTED.labels(reason="unauthenticated").inc()
            msg = ("API key or token expired" if key is not None else
                   "missing or invalid API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
            return Refusal(401, msg, {"WWW-Authenticate": "Bearer"})
        if not key.allows(needed):
            metrics.REJECTED.labels(reason="forbidden").inc()
            return Refusal(403, f"key {key.id!r} lacks the {needed!r} scope for this route")
        wait = self.limiter.take(key)
        if wait > 0:
            metrics.REJECTED.labels(reason="rate_limited").inc()
            return Refusal(429, f"rate limit of key {key.id!r} exceeded; retry later",
                           {"Retry-After": str(max(1, math.ceil(wait)))})
        return key


def too_large(max_body_bytes: int) -> Refusal:
    metrics.REJECTED.labels(reason="too_large").inc()
    return Refusal(413, f"request body larger than {max_body_bytes} bytes")


def presented_key(headers: Headers) -> str | None:
    """The key from `Authorization: Bearer <key>` or `X-API-Key: <key>`, if either is present."""
    auth = headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    key = headers.get("x-api-key", "").strip()
    return key or None


def required_scope(path: str) -> str | None:
    if OPEN_PATHS.match(path):
        return None
    if METRICS_PATHS.match(path):
        return "metrics"
    return "admin" if ADMIN_PATHS.match(path) else "predict"


class _TooLarge(Exception):
    pass


class SecurityMiddleware:
    """Metrics -> key + scope -> rate limit -> body size limit -> the app.

    `checked_by_app`: paths whose key, scope and rate limit the app checks itself (the MLServer
    runtime's routes, which must also check gRPC calls): here they get metrics and the body limit only.
    """

    def __init__(self, app: ASGIApp, keys: KeyStore, max_body_bytes: int = 1 << 20,
                 rate_per_s: float = 50.0, burst: float = 100.0, checked_by_app: re.Pattern | None = None):
        self.app = app
        self.keys = keys
        self.max_body_bytes = max_body_bytes
        self.gate = Gate(keys, rate_per_s, burst)
        self.checked_by_app = checked_by_app

    def __repr__(self) -> str:
        return f"SecurityMiddleware(keys={self.keys!r})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":  # no websocket routes: refuse without a body
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(scope, receive, send)
            return
        route = metrics.route_of(scope["path"])
        status = {"code": 500}
        start = time.perf_counter()

        async def send_recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self._handle(scope, receive, send_recording)
        finally:
            metrics.REQUESTS.labels(route=route, status=str(status["code"])).inc()
            metrics.LATENCY.labels(route=route).observe(time.perf_counter() - start)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        needed = required_scope(scope["path"])
        if needed is None:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        key = None
        if not (self.checked_by_app and self.checked_by_app.match(scope["path"])):
            key = self.gate.admit(needed, presented_key(headers))
            if isinstance(key, Refusal):
                await _error(scope, receive, send, key.status, key.message, key.headers)
                return
        try:
            body_receive = await self._bounded_body(headers, receive)
        except _TooLarge:
            refusal = too_large(self.max_body_bytes)
            await _error(scope, receive, send, refusal.status, refusal.message)
            return
        if key is not None:
            scope.setdefault("state", {})["api_key_id"] = key.id
        await self.app(scope, body_receive, send)

    async def _bounded_body(self, headers: Headers, receive: Receive) -> Receive:
        """Read the body up front (at most the limit) and replay it; refuse early on Content-Length."""
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            raise _TooLarge()
        chunks, total = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                chunks = None  # a disconnect: let the app see it
                pending = message
                break
            total += len(message.get("body", b""))
            if total > self.max_body_bytes:
                raise _TooLarge()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        if chunks is None:
            async def replay_disconnect() -> Message:
                return pending
            return replay_disconnect
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()
        return replay


async def _error(scope: Scope, receive: Receive, send: Send, status: int, message: str,
                 headers: dict | None = None) -> None:
    await JSONResponse({"error": message}, status_code=status, headers=headers)(scope, receive, send)


# ---------------------------------------------------------------- key management CLI


# The keys a cluster starts with (deploy/README.md): who holds each, its scopes and kind.
CLUSTER_KEYS = (
    ("client", ["predict"], "api_key"),  # API clients and the deploy smoke test
    ("prometheus", ["metrics"], "service_token"),  # the PodMonitors' scrape token: /metrics only
    ("admin", ["admin"], "api_key"),  # operators: the model repository API
)


def bootstrap_keys(out_dir: Path) -> list[dict]:
    """New keys for a cluster: `keys.json` (hashes and scopes only: the serving Secret's content) and
    one `<id>.key` file per plain key (mode 0600, for the secret manager and the holder), in out_dir.
    Files rather than stdout so no plain key lands in a terminal's scrollback."""
    targets = [out_dir / f"{kid}.key" for kid, _, _ in CLUSTER_KEYS] + [out_dir / "keys.json"]
    if existing := [str(t) for t in targets if t.exists()]:  # never overwrite keys someone may hold
        raise FileExistsError(f"refusing to overwrite existing keys: {', '.join(existing)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for kid, scopes, kind in CLUSTER_KEYS:
        key = new_key()
        plain = out_dir / f"{kid}.key"
        plain.touch(mode=0o600, exist_ok=False)  # owner-only before the key is written
        plain.write_text(key)
        entries.append({"id": kid, "hash": hash_key(key), "scopes": scopes, "kind": kind})
    parse_keys(entries, "bootstrap")  # validate before anything is handed out
    write_keys_file(out_dir / "keys.json", entries)
    return entries


def _cli(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["bootstrap"]:
        b = argparse.ArgumentParser(prog="python -m llama_platform.serving.auth bootstrap",
                                    description="Make a cluster's keys (client: predict, prometheus: metrics, "
                                                "admin): keys.json (hashes) and one <id>.key file per plain key.")
        b.add_argument("out_dir", type=Path)
        out = b.parse_args(argv[1:]).out_dir
        try:
            made = bootstrap_keys(out)
        except FileExistsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        for e in made:
            print(f"{e['id']}: scopes {','.join(e['scopes'])}, plain key in {out / (e['id'] + '.key')}", file=sys.stderr)
        print(f"hashed keys file: {out / 'keys.json'}", file=sys.stderr)
        return 0
    p = argparse.ArgumentParser(prog="python -m llama_platform.serving.auth",
                                description="Make a new API key or service token: prints the key once "
                                            "(to hand out) and the entry to add to the keys Secret. "
                                            "`bootstrap DIR` makes a cluster's first keys.")
    p.add_argument("id")
    p.add_argument("--scopes", default="predict", help="comma-separated: predict, metrics, admin")
    p.add_argument("--kind", default="api_key", choices=KINDS)
    p.add_argument("--rate-per-s", type=float)
    p.add_argument("--expires-at")
    args = p.parse_args(argv)
    key = new_key()
    entry = {"id": args.id, "hash": hash_key(key), "scopes": args.scopes.split(","), "kind": args.kind}
    if args.rate_per_s:
        entry["rate_per_s"] = args.rate_per_s
    if args.expires_at:
        entry["expires_at"] = args.expires_at
    parse_keys([entry], "new entry")  # validate before printing
    print(f"key (shown once): {key}", file=sys.stderr)
    print(json.dumps(entry))
    return 0


def write_keys_file(path: Path, entries: Iterable[dict]) -> None:
    """Write a keys file atomically (rename), as a Secret volume update does."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"keys": list(entries)}))
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(_cli())
