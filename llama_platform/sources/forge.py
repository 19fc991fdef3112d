"""What every forge connector shares: the `Forge` protocol, its errors, and token redaction.

Errors raised by connectors carry the forge's status and message but never the token: connectors
build their messages through `redact`, and raise them `from None` so a chained library exception
(which may hold a request URL or headers) is not printed with the traceback.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Iterator, Protocol

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


class Forge(Protocol):
    source: str

    def fetch_repo(self, repo: str, since: datetime | None = None) -> Iterator[dict]:
        """Yield one `records.raw_row` per issue (PRs included) updated at or after `since`."""
        ...

    def fetch_issues(self, repo: str, since: datetime | None = None) -> Iterator[tuple[dict, list[dict]]]:
        """Yield (issue JSON, its comments' JSON) pairs exactly as the forge sent them."""
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
