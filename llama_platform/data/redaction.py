"""Redact PII and secrets from issue text, and pseudonymise usernames.

Secrets are found by `secrets.py` (Betterleaks' provider rules behind one Hyperscan prefilter, plus
our rules for the prose forms: password flags and assignments, auth headers, credentials in URLs,
whole JWTs, private-key blocks, high-entropy values next to credential words), personal data by
`pii.py` (e-mails, phone numbers, IP addresses, payment cards, national IDs, IBANs, each checked
as its issuer defines it). Every finding becomes a typed placeholder (`<EMAIL>`, `<PHONE>`,
`<SECRET:GitHubToken>`), so the model still sees that something was there. The snapshot's
`no_secret_survives` check re-scans with other detectors (`verify.py`).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from functools import lru_cache
from typing import Callable, Iterable

from llama_platform.data.pii import EMAIL, IP_ADDRESS, KINDS, pii_spans
from llama_platform.data.secrets import GENERIC_KINDS, scan

__all__ = [
    "EMAIL", "IP_ADDRESS", "PLACEHOLDER", "find_secrets", "redact", "pseudonymise", "mention_replacer", "mentioned_logins",
    "replace_mentions",
]

# Our own placeholders; masked before scanning so `https://<SECRET:X>@host` is not read as a credential.
PLACEHOLDER = re.compile(r"<(?:" + "|".join(KINDS) + r"|SECRET:[A-Za-z0-9]+|USER_[0-9a-f]{6})>")
_MENTION = re.compile(r"(?<![\w@./-])@([A-Za-z0-9](?:[A-Za-z0-9_-]{0,38}))(?![\w-])")
# Known-safe spans: whatever a detector finds inside is kept (base64 image data is not a key).
_SAFE = re.compile(r"data:(?:image|font|audio|video)/[\w.+-]+;base64,[A-Za-z0-9+/=]+")


def _spans(text: str) -> list[tuple[int, int, str]]:
    found, hits = scan(text)  # one Hyperscan scan decides which secret and PII checks run
    secrets = [(s, e, f"SECRET:{kind}") for s, e, kind in found]
    pii = pii_spans(text, hits)
    if secrets and pii:  # `https://bob:pw@git.example.com`: "pw@git.example.com" is no address
        pii = [p for p in pii if p[2] != EMAIL or not any(s <= p[0] < e for s, e, _ in secrets)]
    spans = secrets + pii
    if spans and "data:" in text:
        safe = [m.span() for m in _SAFE.finditer(text)]
        spans = [sp for sp in spans if not any(a <= sp[0] and sp[1] <= b for a, b in safe)]
    return spans


def _rank(kind: str, length: int) -> tuple[int, int]:
    # A provider's name beats a generic one, which beats personal data; then the longer finding.
    if not kind.startswith("SECRET:"):
        return 0, length
    return (1 if kind[7:] in GENERIC_KINDS else 2), length


def _merge(spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Union overlapping spans (nothing partly redacted); the most specific finding names the merged span."""
    merged: list[list] = []
    for start, end, kind in sorted(spans):
        if merged and start < merged[-1][1]:
            last = merged[-1]
            if _rank(kind, end - start) > _rank(last[2], last[3]):
                last[2], last[3] = kind, end - start
            last[1] = max(last[1], end)
        else:
            merged.append([start, end, kind, end - start])
    return [(s, e, k) for s, e, k, _ in merged]


def _mask_placeholders(text: str) -> str:
    # Same-length blanks keep offsets valid and cannot glue the neighbours into a new finding.
    return PLACEHOLDER.sub(lambda m: " " * len(m.group()), text) if "<" in text else text


def redact(text: str | None) -> tuple[str, dict[str, int]]:
    """Replace PII and secrets with typed placeholders; count replacements by type."""
    if not text:
        return text or "", {}
    spans = _merge(_spans(_mask_placeholders(text)))
    if not spans:
        return text, {}
    parts, pos = [], 0
    for start, end, kind in spans:
        parts.append(text[pos:start])
        parts.append(f"<{kind}>")
        pos = end
    parts.append(text[pos:])
    return "".join(parts), dict(Counter(kind for _, _, kind in spans))


def find_secrets(text: str | None) -> list[str]:
    """Types of PII/secrets the redactor's own detectors find (sorted, unique), ignoring placeholders."""
    if not text:
        return []
    return sorted({kind for _, _, kind in _spans(_mask_placeholders(text))})


@lru_cache(maxsize=65536)
def pseudonymise(login: str | None, salt: str = "") -> str | None:
    """A stable placeholder for a username: `<USER_ab12cd>` (logins are case-insensitive on forges)."""
    if login is None or login == "":
        return None
    digest = hashlib.sha256(f"{salt}\x00{login.strip().lower()}".encode("utf-8")).hexdigest()
    return f"<USER_{digest[:6]}>"


def mention_replacer(known_logins: Iterable[str], salt: str = "") -> Callable[[str], str]:
    """A function that replaces `@login` mentions of known logins by their pseudonym.

    Other mentions (`@types/node`, bots, people not in the data) stay. Build it once per batch:
    lower-casing a large login set per text would dominate the cleaning time.
    """
    known_lower = frozenset(k.lower() for k in known_logins if k)

    def sub(m: re.Match) -> str:
        login = m.group(1)
        return (pseudonymise(login, salt) or login) if login.lower() in known_lower else m.group(0)

    return lambda text: _MENTION.sub(sub, text) if "@" in text else text


def mentioned_logins(texts: Iterable[str]) -> set[str]:
    """Lower-cased logins @mentioned in `texts` (what a `mention_replacer` would look up)."""
    return {login.lower() for text in texts if "@" in text for login in _MENTION.findall(text)}


def replace_mentions(text: str, known_logins: Iterable[str], salt: str = "") -> str:
    """Replace `@login` mentions of known logins by their pseudonym (see `mention_replacer`)."""
    return mention_replacer(known_logins, salt)(text)
