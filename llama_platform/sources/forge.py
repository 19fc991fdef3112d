"""What every forge connector shares: the `Forge` protocol, its errors, and token redaction.

Errors raised by connectors carry the forge's status and message but never the token: connectors
build their messages through `redact`, and raise them `from None` so a chained library exception
(which may hold a request URL or headers) is not printed with the traceback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Protocol

if TYPE_CHECKING:
    from llama_platform.sources.checkpoint import FetchCheckpoint

REDACTED = "***"
_REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


class ForgeError(RuntimeError):
    """A forge request failed (after retries); `status` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class ForgeAuthError(ForgeError):
    """The forge refused the credentials (401/403)."""


class RepoNotFound(ForgeError):
    """The forge has no such repository (404)."""


class PageNotFound(ForgeError):
    """A 404 on a later page of a list the forge already answered (not a missing repo): the page a
    `Link` pointed at is gone, or a proxy lost it."""


class BadPayload(ForgeError):
    """A 200 answer whose body is not what the API promises (empty, not JSON, null items), after retries."""


class RateLimitExhausted(ForgeError):
    """The forge's rate limit needs a longer wait than the connector's `max_wait`.

    `reset_at` (aware UTC) is when the forge says requests may resume; a fetch given a checkpoint
    can be retried after it and resumes where it stopped.
    """

    def __init__(self, message: str, status: int | None, reset_at: datetime, wait: float):
        super().__init__(message, status)
        self.reset_at = reset_at
        self.wait = wait


# Called before every wait (rate limit, retry backoff) with the seconds about to be slept and why.
OnWait = Callable[[float, str], None]


@dataclass(frozen=True)
class PollResult:
    """Outcome of a cheap "did anything change?" request.

    `etag` is opaque: pass it to the next `poll`. GitHub: the list's ETag (a 304 answer costs no rate
    limit). Gitee (no ETags): the latest `updated_at` seen, as ISO 8601.
    """

    changed: bool
    etag: str | None
    requests: int
    # The newest record's updated_at, when the answer carried one: lets a caller see that a change
    # is already stored (updated before its last fetch) and skip a fetch that returns nothing new.
    newest_updated_at: datetime | None = None


class Forge(Protocol):
    source: str

    def fetch_repo(
        self,
        repo: str,
        since: datetime | None = None,
        checkpoint: "FetchCheckpoint | str | Path | None" = None,
        on_wait: OnWait | None = None,
    ) -> Iterator[dict]:
        """Yield one `records.raw_row` per issue (PRs included) updated at or after `since`."""
        ...

    def fetch_issues(
        self,
        repo: str,
        since: datetime | None = None,
        checkpoint: "FetchCheckpoint | str | Path | None" = None,
        on_wait: OnWait | None = None,
    ) -> Iterator[tuple[dict, list[dict]]]:
        """Yield (issue JSON, its comments' JSON) pairs exactly as the forge sent them."""
        ...

    def poll(self, repo: str, etag: str | None = None) -> PollResult:
        """One cheap request: has anything in `repo` changed since the `etag` of the last poll?"""
        ...


def redact(text: str, *secrets: str | None) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def check_repo(repo: str) -> str:
    if not isinstance(repo, str) or not _REPO_RE.match(repo):
        raise ValueError(f"repo must look like owner/name, got {repo!r}")
    return repo


def utc(since: datetime | None) -> datetime | None:
    """`since` as aware UTC; a naive datetime is taken to be UTC already."""
    if since is None:
        return None
    return since.replace(tzinfo=timezone.utc) if since.tzinfo is None else since.astimezone(timezone.utc)
