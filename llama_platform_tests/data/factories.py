"""Small forge payload builders for the data tests (shaped like the GitHub and Gitee v5 APIs)."""

from __future__ import annotations

from typing import Any

from llama_platform.sources.records import raw_frame, raw_row

LOREM = (
    "When I start the server with the default configuration it exits immediately with an error about "
    "the cache directory. Steps to reproduce: install version 2.3, run the start command, watch it fail."
)


def gh_issue(
    number: int,
    title: str = "Server exits at start",
    body: str = LOREM,
    labels: tuple[str, ...] = ("bug",),
    login: str | None = "alice",
    user_type: str = "User",
    created: str = "2024-01-01T10:00:00Z",
    updated: str = "2024-01-02T10:00:00Z",
    state: str = "open",
    pull_request: bool = False,
    association: str = "CONTRIBUTOR",
    **extra: Any,
) -> dict:
    issue = {
        "number": number,
        "title": title,
        "body": body,
        "state": state,
        "labels": [{"name": n} for n in labels],
        "user": {"login": login, "type": user_type} if login else None,
        "author_association": association,
        "created_at": created,
        "updated_at": updated,
        "closed_at": None,
        **extra,
    }
    if pull_request:
        issue["pull_request"] = {"url": "https://example.invalid/pr"}
    return issue


def gh_comment(login: str, body: str, created: str = "2024-01-01T12:00:00Z", user_type: str = "User") -> dict:
    return {"user": {"login": login, "type": user_type}, "body": body, "created_at": created}


def gitee_issue(
    number: str,
    title: str = "启动失败",
    body: str = LOREM,
    labels: tuple[str, ...] = ("缺陷",),
    login: str = "zhang",
    created: str = "2024-01-01T18:00:00+08:00",
    updated: str = "2024-01-02T18:00:00+08:00",
    state: str = "progressing",
) -> dict:
    return {
        "number": number,
        "title": title,
        "body": body,
        "state": state,
        "labels": [{"name": n} for n in labels],
        "user": {"login": login, "type": "User"},
        "created_at": created,
        "updated_at": updated,
        "finished_at": None,
    }


def gh_row(repo: str = "acme/server", comments: list[dict] | None = None, **kwargs: Any) -> dict:
    return raw_row("github", repo, gh_issue(**kwargs), comments or [])


def frame(rows: list[dict]):
    return raw_frame(rows)
