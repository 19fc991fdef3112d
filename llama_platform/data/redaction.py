"""Redact PII and secrets from issue text, and pseudonymise usernames.

Secrets are found by detect-secrets' own plugins, run line by line as detect-secrets does, plus
what its line-based plugins cannot cover: whole private-key blocks (the plugin only sees the BEGIN
line) and credentials in URLs (the whole `user:password`, not only the password). Every finding
becomes a typed placeholder (`<EMAIL>`, `<IP_ADDRESS>`, `<SECRET:GitHubToken>`), so the model
still sees that something was there.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import tempfile
import threading
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable

import hyperscan
from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.high_entropy_strings import HighEntropyStringsPlugin
from detect_secrets.plugins.ip_public import IPPublicDetector
from detect_secrets.plugins.keyword import QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP, KeywordDetector

EMAIL = "EMAIL"
IP_ADDRESS = "IP_ADDRESS"
# Our own placeholders; masked before scanning so `https://<SECRET:X>@host` is not read as a credential.
PLACEHOLDER = re.compile(r"<(?:EMAIL|IP_ADDRESS|SECRET:[A-Za-z0-9]+|USER_[0-9a-f]{6})>")

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_PRIVATE_KEY_BLOCK = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY((?: BLOCK)?)-----.*?-----END \1PRIVATE KEY\2-----", re.DOTALL
)
# A pasted key cut short (no END line): redact to the end of its paragraph.
_PRIVATE_KEY_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
_PARAGRAPH_END = re.compile(r"\n\s*\n|\Z")
_PUTTY_KEY = re.compile(r"PuTTY-User-Key-File-\d.*?(?:Private-MAC:[^\n]*|\n\s*\n|\Z)", re.DOTALL)
# scheme://user:password@host -> the whole user:password part.
_URL_CREDENTIALS = re.compile(r"(?<=://)[^\s/@:]+:[^\s/@]+(?=@)")
_MENTION = re.compile(r"(?<![\w@./-])@([A-Za-z0-9](?:[A-Za-z0-9_-]{0,38}))(?![\w-])")

# Kept as is: they identify no one and say a lot in bug reports ("listening on 127.0.0.1").
_HARMLESS_IPS = {"127.0.0.1", "0.0.0.0", "::1", "::", "255.255.255.255"}


def _type_name(secret_type: str) -> str:
    # "GitHub Token" -> "GitHubToken", "AWS Access Key" -> "AWSAccessKey"
    return re.sub(r"[^A-Za-z0-9]", "", secret_type)


Rule = tuple[str, re.Pattern, "int | None"]  # (type name, regex, secret group or None)


@lru_cache(maxsize=1)
def _rules() -> tuple[Rule, ...]:
    """(type name, regex, group or None) for every detect-secrets plugin regex we run.

    Left out: the high-entropy plugins (they flag every commit SHA and checksum in a bug report)
    and the public-IP plugin (IP addresses are redacted below as PII, public or not).
    """
    out: list[Rule] = []
    for secret_type, cls in sorted(get_mapping_from_secret_type_to_class().items()):
        if issubclass(cls, (HighEntropyStringsPlugin, IPPublicDetector)):
            continue
        name = _type_name(secret_type)
        if issubclass(cls, KeywordDetector):
            # Quotes-required variant, as detect-secrets uses for files of unknown type.
            out += [(name, rx, grp) for rx, grp in QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP.items()]
        elif issubclass(cls, RegexBasedDetector):
            out += [(name, rx, None) for rx in cls.denylist]  # type: ignore[attr-defined]  # a class attribute
    return tuple(out)


# Our own patterns, prefiltered with the plugins' (ids after theirs, in this order).
_OWN = {"email": _EMAIL, "ipv4": _IPV4, "ipv6": _IPV6, "private_key": _PRIVATE_KEY_BEGIN, "putty": _PUTTY_KEY}
# Characters on which Python's `re` and Hyperscan disagree: re's case-insensitive matching folds
# these letters onto ASCII ("\u017f" matches "s"), `\s` in re also matches \x1c-\x1f, and `\v` in
# the plugins' classes is only \x0b for re but all vertical space for Hyperscan. A text holding one
# (rare) runs every pattern instead.
_PREFILTER_UNSAFE = re.compile("[\u0130\u0131\u017f\u212a\x0b\x0c\r\x1c-\x1f\x85\u2028\u2029]")


def _prefilter_patterns() -> tuple[list[bytes], list[int]]:
    patterns = [rx for _, rx, _ in _rules()] + list(_OWN.values())
    flags = []
    for rx in patterns:
        flag = hyperscan.HS_FLAG_PREFILTER | hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_ALLOWEMPTY
        flag |= hyperscan.HS_FLAG_MULTILINE | hyperscan.HS_FLAG_UTF8 | hyperscan.HS_FLAG_UCP
        flag |= hyperscan.HS_FLAG_CASELESS if rx.flags & re.IGNORECASE else 0
        flag |= hyperscan.HS_FLAG_DOTALL if rx.flags & re.DOTALL else 0
        flags.append(flag)
    return [rx.pattern.encode("utf-8") for rx in patterns], flags


@lru_cache(maxsize=1)
def _prefilter() -> hyperscan.Database:
    """One Hyperscan database of every pattern above, compiled in prefilter mode.

    Most texts hold no secret, and Python's `re` costs a pass per pattern (~60 of them); Hyperscan
    scans for all of them at once. Prefilter mode compiles what Hyperscan cannot (look-arounds,
    back-references) to a looser pattern, so a hit is only a candidate, confirmed by the real
    regex, and a miss is certain. Multiline: the plugins run per line, so `^`/`$` are line ends.

    Compiling takes seconds (Unicode classes are large), so the serialised database is cached on
    disk, keyed by the patterns and the Hyperscan version; every worker process loads it.
    """
    expressions, flags = _prefilter_patterns()
    key = hashlib.sha256(repr((hyperscan.__version__, expressions, flags)).encode()).hexdigest()[:16]
    folder = _private_cache_dir()
    cache = folder / f"redaction-{key}.db" if folder else None
    if cache is not None and cache.exists():
        try:
            db = hyperscan.loadb(cache.read_bytes(), hyperscan.HS_MODE_BLOCK)
            db.scratch = hyperscan.Scratch(db)  # a loaded database comes without one
            return db
        except (hyperscan.error, OSError):  # written on another CPU, corrupt or unreadable: compile
            pass
    db = hyperscan.Database()
    db.compile(expressions=expressions, ids=list(range(len(expressions))), elements=len(expressions), flags=flags)
    if cache is not None:
        tmp = cache.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            tmp.write_bytes(hyperscan.dumpb(db))
            os.replace(tmp, cache)  # atomic: a concurrent worker reads the old file or the whole new one
        except OSError:  # a read-only or full disk only costs the next process a compile
            tmp.unlink(missing_ok=True)
    return db


def _private_cache_dir() -> Path | None:
    """This user's own cache folder (mode 0700), or None where there is none to be had.

    Private, because a database planted by someone else could match nothing and so switch
    redaction off (and the `no_secret_survives` re-scan with it).
    """
    folder = Path(tempfile.gettempdir()) / f"llama-platform-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = folder.stat()
    except OSError:
        return None
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        return None
    return folder


def _candidates(text: str) -> set[int] | None:
    """Ids (plugin rules, then `_OWN`) of the patterns that may match `text`; None: all may."""
    if _PREFILTER_UNSAFE.search(text):
        return None
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: not valid UTF-8 for Hyperscan
        return None
    hits: set[int] = set()
    _prefilter().scan(data, match_event_handler=lambda id_, *_: hits.add(id_))
    return hits


@lru_cache(maxsize=None)
def _own_id(name: str) -> int:
    return len(_rules()) + list(_OWN).index(name)


def _own_hit(name: str, hits: set[int] | None) -> bool:
    return hits is None or _own_id(name) in hits


# Plugins whose capture group is only a prefix of the token (`(ghp|gho|...)_...`): redact the whole match.
_WHOLE_MATCH_TYPES = {"GitHubToken", "GitLabToken"}


def _secret_span(m: re.Match, group: int | None, name: str) -> tuple[int, int]:
    if group is not None:
        return m.span(group)
    if name not in _WHOLE_MATCH_TYPES:
        # detect-secrets reports the capture group(s) as the secret when a regex has them.
        groups = [i for i in range(1, (m.re.groups or 0) + 1) if m.group(i)]
        if groups:
            return m.span(max(groups, key=lambda i: len(m.group(i))))
    start, end = m.span()
    text = m.string
    # Some regexes include their delimiters (`(?:\s|=|:|"|^)AKC...(?:\s|"|$)`); keep those.
    while start < end and text[start] in " \t\"'=:":
        start += 1
    while end > start and text[end - 1] in " \t\"'":
        end -= 1
    return start, end


def _plugin_spans(text: str, hits: set[int] | None) -> list[tuple[int, int, str]]:
    spans = []
    rules = _rules()
    # Only the rules the prefilter flagged (ids past the rules are our own patterns).
    for rule_id in range(len(rules)) if hits is None else sorted(h for h in hits if h < len(rules)):
        name, regex, group = rules[rule_id]
        if not regex.search(text):
            continue
        offset = 0
        for line in text.split("\n"):  # line by line, as detect-secrets scans
            for m in regex.finditer(line):
                start, end = _secret_span(m, group, name)
                if end > start:
                    spans.append((offset + start, offset + end, f"SECRET:{name}"))
            offset += len(line) + 1
    return spans


def _is_redactable_ip(candidate: str) -> bool:
    try:
        ip = ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return str(ip) not in _HARMLESS_IPS


def _spans(text: str) -> list[tuple[int, int, str]]:
    hits = _candidates(text)
    spans: list[tuple[int, int, str]] = []
    if _own_hit("private_key", hits):
        spans += [(m.start(), m.end(), "SECRET:PrivateKey") for m in _PRIVATE_KEY_BLOCK.finditer(text)]
        complete = {start for start, _, _ in spans}
        for m in _PRIVATE_KEY_BEGIN.finditer(text):
            if m.start() not in complete:
                end = _PARAGRAPH_END.search(text, m.end())
                spans.append((m.start(), end.start() if end else len(text), "SECRET:PrivateKey"))
    if _own_hit("putty", hits):
        spans += [(m.start(), m.end(), "SECRET:PrivateKey") for m in _PUTTY_KEY.finditer(text)]
    has_email = _own_hit("email", hits)
    creds = []
    # In `https://bob:pw@git.example.com` the "pw@git.example.com" looks like an address.
    if "://" in text and "@" in text:
        creds = [(m.start(), m.end(), "SECRET:BasicAuthCredentials") for m in _URL_CREDENTIALS.finditer(text)]
    spans += creds + _plugin_spans(text, hits)
    if has_email:
        spans += [
            (m.start(), m.end(), EMAIL)
            for m in _EMAIL.finditer(text)
            if not any(s <= m.start() < e for s, e, _ in creds)
        ]
    for name, regex in (("ipv4", _IPV4), ("ipv6", _IPV6)):
        if _own_hit(name, hits):
            spans += [(m.start(), m.end(), IP_ADDRESS) for m in regex.finditer(text) if _is_redactable_ip(m.group())]
    return spans


def _merge(spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Union overlapping spans (nothing partly redacted); the longest finding names the merged span."""
    merged: list[list] = []
    for start, end, kind in sorted(spans):
        if merged and start < merged[-1][1]:
            last = merged[-1]
            if end - start > last[3]:
                last[2], last[3] = kind, end - start
            last[1] = max(last[1], end)
        else:
            merged.append([start, end, kind, end - start])
    return [(s, e, k) for s, e, k, _ in merged]


def _mask_placeholders(text: str) -> str:
    # Same-length blanks keep offsets valid and cannot glue the neighbours into a new finding.
    return PLACEHOLDER.sub(lambda m: " " * len(m.group()), text) if "<" in text else text


def _placeholder(kind: str) -> str:
    return f"<{kind}>"


def redact(text: str | None) -> tuple[str, dict[str, int]]:
    """Replace e-mails, IP addresses and secrets with typed placeholders; count replacements by type."""
    if not text:
        return text or "", {}
    spans = _merge(_spans(_mask_placeholders(text)))
    if not spans:
        return text, {}
    parts, pos = [], 0
    for start, end, kind in spans:
        parts.append(text[pos:start])
        parts.append(_placeholder(kind))
        pos = end
    parts.append(text[pos:])
    return "".join(parts), dict(Counter(kind for _, _, kind in spans))


def find_secrets(text: str | None) -> list[str]:
    """Types of PII/secrets still present (sorted, unique), ignoring our own placeholders.

    Used to re-scan redacted text: an empty list is the expected result.
    """
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
