"""The independent check behind `no_secret_survives`: re-scan cleaned text with other detectors.

Re-scanning with the redactor's own detectors can only find what it already removes. This scan uses
a different rule source and engine than `secrets.py` (Betterleaks' rules):
  - detect-secrets' plugins (Yelp's rule set), run line by line as detect-secrets runs them, behind
    a Hyperscan prefilter of their own patterns (one scan; the real regex confirms);
  - an entropy sampler: every long token whose entropy is above a threshold and whose shape is not
    a known-safe one (hex hashes/SHAs, UUIDs, versions, paths, identifiers, base64 image data);
  - a few prose credential forms detect-secrets has no plugin for (password variables, registry
    logins, netrc entries, keys as URL user names), written here as their own regexes, not taken
    from secrets.py (only the placeholder reading, `password_value`, is shared: both sides must
    agree that `changeme` or `${VAR}` is no password, or the snapshot would block on what is kept);
  - the personal-data detectors (`pii.py`): their re-scan finds what a later edit let through.
A finding names its rule (`SECRET:GitHubToken`, `SECRET:HighEntropyString`, `PHONE`), never the value.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

import hyperscan
from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.high_entropy_strings import HighEntropyStringsPlugin
from detect_secrets.plugins.ip_public import IPPublicDetector
from detect_secrets.plugins.keyword import QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP, KeywordDetector

from llama_platform.data.pii import pii_spans
from llama_platform.data.secrets import entropy, looks_random, password_value, private_cache_dir

Rule = tuple[str, re.Pattern, "int | None"]  # (type name, regex, secret group or None)

# Our placeholders, masked before scanning (`<SECRET:GitHubToken>` is what should be there).
_PLACEHOLDER = re.compile(r"<(?:[A-Z_]+|SECRET:[A-Za-z0-9]+|USER_[0-9a-f]{6})>")
_SAFE = re.compile(r"data:(?:image|font|audio|video)/[\w.+-]+;base64,[A-Za-z0-9+/=]+")
# Whole tokens without / or . (paths, URLs, host names hold them; the redactor reads tokens alike).
_TOKEN = re.compile(r"(?<![A-Za-z0-9_+/=.~-])[A-Za-z0-9_+=~-]{32,512}(?![A-Za-z0-9_+/=.~-])")  # as long as the redactor reads
ENTROPY_MIN_LENGTH = 32
# Above the redactor's own bar for context-free tokens (secrets.py, `_context_tokens`): a token
# the sampler flags is one the redactor should have removed.
ENTROPY_THRESHOLD = 4.4


# (name, regex): group 1 is the credential. Whitespace before a value is at most one character:
# a masked placeholder (spaces) must not let the next word pass for the value.
_PROSE_RULES = (
    # A literal only (no `.`, brackets or calls: `PASSWORD = settings.PASSWORD` is code).
    ("PasswordVariable", re.compile(
        r"""(?<![\w$])(?:[A-Z][A-Z0-9]*_)*[A-Z0-9]*PASS(?:WORD|WD)[ \t]?[=:][ \t]?["']?([^\s"'.()\[\]{}$<>%,;]{3,})(?=["'\s,;]|$)"""
    )),
    ("CLIPassword", re.compile(r"""(?:\blogin\b|\bmongo\w*)[^\n]*?[ \t](?:-p|--password)[ \t=]["']?([^\s"'-][^\s"']*)""")),
    # htpasswd -b FILE USER PASSWORD, htpasswd -nb USER PASSWORD
    ("CLIPassword", re.compile(r"\bhtpasswd[ \t]+-(?=[A-Za-z]*n)(?=[A-Za-z]*b)[A-Za-z]+[ \t]+[^\s-]\S*[ \t]([^\s-]\S*)")),
    ("CLIPassword", re.compile(r"\bhtpasswd[ \t]+-(?![A-Za-z]*n)(?=[A-Za-z]*b)[A-Za-z]+[ \t]+[^\s-]\S*[ \t]+[^\s-]\S*[ \t]([^\s-]\S*)")),
    ("CLIPassword", re.compile(r"""\b(?:sshpass[ \t]+-p|redis-cli\b[^\n]*?[ \t]-a)[ \t]["']?([^\s"'-][^\s"']*)""")),
    ("NetrcPassword", re.compile(r"\bmachine[ \t]+[\w-]+\.[\w.-]+(?:\s+login[ \t]+\S+)?\s+password[ \t](\S+)")),
    ("URLKeyCredentials", re.compile(r"://([A-Za-z0-9_-]{32,})@")),
)


def prose_findings(text: str) -> list[tuple[int, int, str]]:
    out = []
    for name, regex in _PROSE_RULES:
        for m in regex.finditer(text):
            value = m.group(1)
            if name == "URLKeyCredentials":
                ok = bool(re.fullmatch(r"[0-9a-fA-F]+", value)) or looks_random(value, min_len=32, min_entropy=3.0)
            else:  # not a port (`-p 8080`) nor a path
                ok = password_value(value) and not re.fullmatch(r"\d{1,5}(?::\d+)*|[\d.]+:[\d:./]+|/.*", value)
            if ok:
                out.append((*m.span(1), name))
    return out


def _type_name(secret_type: str) -> str:
    # "GitHub Token" -> "GitHubToken", "AWS Access Key" -> "AWSAccessKey"
    return re.sub(r"[^A-Za-z0-9]", "", secret_type)


@lru_cache(maxsize=1)
def detect_secrets_rules() -> tuple[Rule, ...]:
    """(type name, regex, group) of every detect-secrets plugin regex.

    Left out: the plugins' entropy scans (the sampler below replaces them: theirs flag every quoted
    commit SHA) and the public-IP plugin (IP addresses are personal data, checked by `pii.py`).
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


# Characters on which Python's `re` and Hyperscan disagree: re's case-insensitive matching folds
# these letters onto ASCII ("\u017f" matches "s"), `\s` in re also matches \x1c-\x1f, and `\v` in
# the plugins' classes is only \x0b for re but all vertical space for Hyperscan. A text holding one
# (rare) runs every pattern instead.
_PREFILTER_UNSAFE = re.compile("[\u0130\u0131\u017f\u212a\x0b\x0c\r\x1c-\x1f\x85\u2028\u2029]")


@lru_cache(maxsize=1)
def _prefilter() -> hyperscan.Database:
    """One Hyperscan database of the plugins' patterns in prefilter mode (cached on disk, see secrets.py)."""
    patterns = [rx for _, rx, _ in detect_secrets_rules()]
    flags = []
    for rx in patterns:
        flag = hyperscan.HS_FLAG_PREFILTER | hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_ALLOWEMPTY
        flag |= hyperscan.HS_FLAG_MULTILINE | hyperscan.HS_FLAG_UTF8 | hyperscan.HS_FLAG_UCP
        flag |= hyperscan.HS_FLAG_CASELESS if rx.flags & re.IGNORECASE else 0
        flag |= hyperscan.HS_FLAG_DOTALL if rx.flags & re.DOTALL else 0
        flags.append(flag)
    expressions = [rx.pattern.encode("utf-8") for rx in patterns]
    key = hashlib.sha256(repr((hyperscan.__version__, expressions, flags)).encode()).hexdigest()[:16]
    folder = private_cache_dir()
    cache = folder / f"verify-{key}.db" if folder else None
    if cache is not None and cache.exists():
        try:
            db = hyperscan.loadb(cache.read_bytes(), hyperscan.HS_MODE_BLOCK)
            db.scratch = hyperscan.Scratch(db)
            return db
        except (hyperscan.error, OSError):
            pass
    db = hyperscan.Database()
    db.compile(expressions=expressions, ids=list(range(len(expressions))), elements=len(expressions), flags=flags)
    if cache is not None:
        from llama_platform.data.secrets import _write_atomic

        _write_atomic(cache, hyperscan.dumpb(db))
    return db


def candidates(text: str) -> set[int] | None:
    """Ids of the detect-secrets rules that may match `text`; None: all may."""
    if _PREFILTER_UNSAFE.search(text):
        return None
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        return None
    hits: set[int] = set()
    _prefilter().scan(data, match_event_handler=lambda id_, *_: hits.add(id_))
    return hits


def detect_secrets_findings(text: str) -> list[tuple[int, int, str]]:
    """(start, end, type) of what detect-secrets' plugins find, line by line as detect-secrets scans."""
    rules = detect_secrets_rules()
    hits = candidates(text)
    spans = []
    for rule_id in range(len(rules)) if hits is None else sorted(hits):
        name, regex, group = rules[rule_id]
        if not regex.search(text):
            continue
        offset = 0
        for line in text.split("\n"):
            for m in regex.finditer(line):
                if group is not None:
                    start, end = m.span(group)
                else:
                    groups = [i for i in range(1, (m.re.groups or 0) + 1) if m.group(i)]
                    start, end = m.span(max(groups, key=lambda i: len(m.group(i)))) if groups else m.span()
                if end > start:
                    spans.append((offset + start, offset + end, name))
            offset += len(line) + 1
    return spans


def high_entropy_tokens(text: str) -> list[tuple[int, int]]:
    """Spans of long, random-looking tokens of no known-safe shape."""
    if len(text) < ENTROPY_MIN_LENGTH:
        return []
    safe = [m.span() for m in _SAFE.finditer(text)] if "data:" in text else []
    out = []
    for m in _TOKEN.finditer(text):
        token = m.group().strip("=")
        if entropy(token) < ENTROPY_THRESHOLD or any(a <= m.start() and m.end() <= b for a, b in safe):
            continue
        if looks_random(token, min_len=ENTROPY_MIN_LENGTH, min_entropy=ENTROPY_THRESHOLD):
            out.append(m.span())
    return out


def _mask(text: str) -> str:
    return _PLACEHOLDER.sub(lambda m: " " * len(m.group()), text) if "<" in text else text


def verify(text: str | None) -> list[str]:
    """Rule names of everything found in (cleaned) `text`, sorted and unique; [] when clean."""
    if not text:
        return []
    text = _mask(text)
    rules = detect_secrets_findings(text) + prose_findings(text)
    found = {f"SECRET:{name}" for _, _, name in rules} | {kind for _, _, kind in pii_spans(text)}
    # A token a rule already named is not reported twice.
    if any(not any(s < e2 and s2 < e for s2, e2, _ in rules) for s, e in high_entropy_tokens(text)):
        found.add("SECRET:HighEntropyString")
    return sorted(found)
