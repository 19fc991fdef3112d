"""Recognise bot accounts and human comments that only invoke a bot.

Bot text (dependency bumps, coverage reports, stale notices) and bot commands (`@dependabot rebase`,
`/retest`) teach the model nothing about the issue, so cleaning drops them.
"""

from __future__ import annotations

import re

# Names only; generic words ("stale", "lock") are GitHub Apps and carry the "[bot]" suffix.
KNOWN_BOTS = frozenset(
    {
        "dependabot",
        "dependabot-preview",
        "renovate",
        "renovate-bot",
        "github-actions",
        "codecov",
        "codecov-io",
        "codecov-commenter",
        "coveralls",
        "mergify",
        "mergifyio",
        "allcontributors",
        "all-contributors",
        "pre-commit-ci",
        "netlify",
        "vercel",
        "sonarcloud",
        "greenkeeper",
        "snyk-bot",
        "bors",
        "rustbot",
        "k8s-ci-robot",
        "openshift-ci-robot",
        "gitee-bot",
        "issue-label-bot",
    }
)
# "[bot]" is GitHub App accounts; the rest are common naming conventions for CI/robot accounts.
_BOT_NAME = re.compile(r"\[bot\]$|[-_]bot$|^bot[-_]|[-_]ci$|[-_]robot$|^robot[-_]", re.IGNORECASE)

# Slash commands used by Prow, Azure Pipelines, etc. `/retest`, `/lgtm`, `/assign @x`, `/azp run`.
_SLASH_COMMAND = re.compile(r"^/[a-z][a-z0-9_-]*(?:\s+\S.*)?$", re.IGNORECASE)
# `@dependabot rebase`, `@bors r+`, `@pre-commit-ci autofix` (the target is checked with is_bot).
_MENTION_COMMAND = re.compile(r"^@([A-Za-z0-9][A-Za-z0-9_.\-\[\]]*)(?:\s+\S.*)?$")
_BARE_COMMAND = re.compile(r"^(?:bors\s+(?:r\+|r-|try|retry|delegate\+?)|recheck|rerun)\s*$", re.IGNORECASE)
_MAX_COMMAND_LINE = 120


def _base_login(login: str) -> str:
    return login.strip().lower().removesuffix("[bot]")


def is_bot(login: str | None, user_type: str | None = None) -> bool:
    """True if the account is a bot: the forge says so, a known bot name, or a bot naming pattern."""
    if user_type and user_type.strip().lower() == "bot":
        return True
    if not login:
        return False
    return _base_login(login) in KNOWN_BOTS or bool(_BOT_NAME.search(login.strip()))


def _is_command_line(line: str) -> bool:
    if len(line) > _MAX_COMMAND_LINE:
        return False
    if _SLASH_COMMAND.match(line) or _BARE_COMMAND.match(line):
        # A path like "/usr/bin/python crashes" is prose, not a command.
        return not line.split()[0].count("/") > 1
    m = _MENTION_COMMAND.match(line)
    return m is not None and is_bot(m.group(1))


def is_bot_invocation(comment_body: str | None) -> bool:
    """True if a (human) comment consists only of bot commands, e.g. `@dependabot rebase` or `/retest`."""
    if not comment_body:
        return False
    lines = [line.strip() for line in comment_body.strip().splitlines() if line.strip()]
    return bool(lines) and all(_is_command_line(line) for line in lines)
