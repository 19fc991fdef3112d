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
import re
import re._constants as sre_constants  # the stdlib's own regex parser (pinned Python 3.11)
import re._parser as sre_parse
from collections import Counter
from functools import lru_cache
from typing import Callable, Iterable

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
# Gates for the three regexes above: patterns that start with a literal are ~20x faster to search,
# and each is a necessary part of any match.
_EMAIL_GATE = re.compile(r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2}")
_IPV4_GATE = re.compile(r"\.\d{1,3}\.\d{1,3}\.")
_IPV6_GATE = re.compile(r":[0-9A-Fa-f]*:")
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


# Whole-text gates: cheap necessary conditions that let a text skip a regex it cannot match.
# Most texts hold no secrets, and Python's `re` is slow on patterns that do not start with a literal.

# Every keyword in detect-secrets' DENYLIST contains one of these (checked in the tests).
KEYWORD_GATE_WORDS = ("key", "pass", "pwd", "secret", "contrase")


def _keyword_gate(text: str, lower: str) -> bool:
    return any(word in lower for word in KEYWORD_GATE_WORDS)


# Each quotes-required keyword regex ends in a fixed shape (`key: "v"`, `key = "v"`, `"v" == key`, ...);
# the gate is a literal-first regex for a substring every match of that shape contains. Keyed by the
# fragment of the plugin's pattern that has the shape (checked in the tests: each rule gets one).
KEYWORD_SHAPE_GATES = {
    r""":(\s*)([\'"`])""": re.compile(r""":\s*['"`]"""),
    r"""(={1,3}|!==?)\s*([\'"`])""": re.compile(r"""=\s*['"`]"""),  # "=", "==", "===", "!=", "!==" end in "="
    r"""=>?\s*([\'"`])""": re.compile(r"""=>?\s*['"`]"""),
    r"""(\2);""": re.compile(r"""['"`];"""),
    r"""\s*[!=]{2,3}\s*""": re.compile(r"""[!=][!=]"""),
}


def keyword_shape_gate(regex: re.Pattern) -> Gate | None:
    shapes = [gate for fragment, gate in KEYWORD_SHAPE_GATES.items() if fragment in regex.pattern]
    if len(shapes) != 1:
        return None
    (shape,) = shapes
    return lambda text, lower: shape.search(text) is not None


_ASSIGNMENT_PREFIX = r"(?:(?<=\W)|(?<=^))"
# The vendor assignment regexes (Cloudant, IBM, SoftLayer) all require a 24+ character value.
_LONG_TOKEN = re.compile(r"[A-Za-z0-9_\-]{24}")


def _long_token_gate(text: str, lower: str) -> bool:
    return _LONG_TOKEN.search(text) is not None


def _literal_run(items) -> str:
    run = []
    for op, av in items:
        if op is not sre_constants.LITERAL:
            break
        run.append(chr(av))
    return "".join(run)


def _required_literals(regex: re.Pattern) -> tuple[str, ...]:
    """Strings of which every match must contain at least one (empty tuple: none found).

    Read from the parsed pattern: a literal run at the top level is mandatory, and so is one of the
    leading literal runs of a top-level alternation's branches.
    """
    try:
        tree = sre_parse.parse(regex.pattern, regex.flags)
    except Exception:  # an unusual pattern just goes without a gate
        return ()
    best: tuple[str, ...] = ()
    items = list(tree)
    for i, (op, av) in enumerate(items):
        candidate: tuple[str, ...] = ()
        if op is sre_constants.LITERAL and (i == 0 or items[i - 1][0] is not sre_constants.LITERAL):
            candidate = (_literal_run(items[i:]),)
        elif op is sre_constants.BRANCH:
            prefixes = tuple(_literal_run(list(branch)) for branch in av[1])
            candidate = prefixes if all(prefixes) else ()
        elif op is sre_constants.SUBPATTERN:
            inner = list(av[-1])
            if len(inner) == 1 and inner[0][0] is sre_constants.BRANCH:
                prefixes = tuple(_literal_run(list(branch)) for branch in inner[0][1][1])
                candidate = prefixes if all(prefixes) else ()
            else:
                candidate = (_literal_run(inner),) if _literal_run(inner) else ()
        if candidate and min(map(len, candidate)) > min(map(len, best), default=1):
            best = candidate
    return best


_CASE_FOLDS = re.compile("[\u0130\u0131\u017f\u212a]")
# A gate gets the text and its lower-case form (computed once per text).
Gate = Callable[[str, str], bool]


def _literal_gate(regex: re.Pattern) -> Gate | None:
    return _any_literal_gate([regex])


def _any_literal_gate(regexes: list[re.Pattern]) -> Gate | None:
    """A gate that passes when the text holds a required literal of any of `regexes` (None: one has none)."""
    cased: list[str] = []
    lowered: list[str] = []
    for regex in regexes:
        literals = _required_literals(regex)
        if not literals:
            return None
        if regex.flags & re.IGNORECASE:
            lowered += [lit.lower() for lit in literals]
        else:
            cased += literals
    if not lowered:
        return _cased_gate(tuple(dict.fromkeys(cased)))
    if not cased:
        return _lowered_gate(tuple(dict.fromkeys(lowered)))
    cased_gate, lowered_gate = _cased_gate(tuple(dict.fromkeys(cased))), _lowered_gate(tuple(dict.fromkeys(lowered)))
    return lambda text, lower: cased_gate(text, lower) or lowered_gate(text, lower)


def _lowered_gate(lowered: tuple[str, ...]) -> Gate:
    if len(lowered) == 1:
        (only,) = lowered
        return lambda text, lower: only in lower
    return lambda text, lower: any(lit in lower for lit in lowered)


def _cased_gate(literals: tuple[str, ...]) -> Gate:
    if len(literals) == 1:
        (only,) = literals
        return lambda text, lower: only in text
    return lambda text, lower: any(lit in text for lit in literals)


def _all_gates(*gates: Gate | None) -> Gate | None:
    present = tuple(g for g in gates if g is not None)
    if not present:
        return None
    return present[0] if len(present) == 1 else (lambda text, lower: all(g(text, lower) for g in present))


# Hand-written gates for the two token formats that start with a character class: each is a
# literal-first part of the plugin's own regex.
_TYPE_GATES = {
    "TelegramBotToken": re.compile(r":[0-9A-Za-z_-]{35}"),
    "DiscordBotToken": re.compile(r"\.[a-zA-Z\d_-]{6}\.[a-zA-Z\d_-]{27}"),
}


def _type_gate(name: str) -> Gate | None:
    gate = _TYPE_GATES.get(name)
    return (lambda text, lower: gate.search(text) is not None) if gate else None


Rule = tuple[re.Pattern, "int | None", "Gate | None"]  # (regex, secret group or None, gate or None)


@lru_cache(maxsize=1)
def _detectors() -> tuple[tuple[str, Gate | None, tuple[Rule, ...]], ...]:
    """(type name, detector gate, ((regex, group or None, gate or None), ...)) for every plugin we use.

    The detector gate passes when a required literal of any of its rules is there: one check skips
    all of a plugin's rules (the PrivateKey plugin has eight) on a text that cannot match any.

    Left out: the high-entropy plugins (they flag every commit SHA and checksum in a bug report)
    and the public-IP plugin (IP addresses are redacted below as PII, public or not).
    """
    out: list[tuple[str, Gate | None, tuple[Rule, ...]]] = []
    rules: tuple[Rule, ...]
    for secret_type, cls in sorted(get_mapping_from_secret_type_to_class().items()):
        if issubclass(cls, (HighEntropyStringsPlugin, IPPublicDetector)):
            continue
        if issubclass(cls, KeywordDetector):
            # Quotes-required variant, as detect-secrets uses for files of unknown type.
            rules = tuple(
                # The shape gate first: it is the cheapest and rejects nearly every text.
                (rx, grp, _all_gates(keyword_shape_gate(rx), _keyword_gate, _literal_gate(rx)))
                for rx, grp in QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP.items()
            )
        elif issubclass(cls, RegexBasedDetector):
            rules = tuple(
                (
                    rx,
                    None,
                    # Substring gates first: they are far cheaper than the long-token regex.
                    _all_gates(
                        _literal_gate(rx), _long_token_gate if rx.pattern.startswith(_ASSIGNMENT_PREFIX) else None
                    ),
                )
                for rx in cls.denylist  # type: ignore[attr-defined]  # a class attribute in every plugin
            )
        else:
            continue
        name = _type_name(secret_type)
        rules = tuple((rx, grp, _all_gates(gate, _type_gate(name))) for rx, grp, gate in rules)
        out.append((name, _any_literal_gate([rx for rx, _, _ in rules]), rules))
    return tuple(out)


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


def _plugin_spans(text: str) -> list[tuple[int, int, str]]:
    spans = []
    lower = text.lower()
    # re's case-insensitive matching folds these onto ASCII letters ("ſ" matches "s"), which the
    # lower-cased substring gates cannot see: such a (rare) text skips the gates.
    gated = text.isascii() or not _CASE_FOLDS.search(text)
    for name, detector_gate, rules in _detectors():
        if gated and detector_gate is not None and not detector_gate(text, lower):
            continue
        for regex, group, gate in rules:
            # Whole-text gates first: most texts have no secrets, and per-line scans are costly.
            if (gated and gate is not None and not gate(text, lower)) or not regex.search(text):
                continue
            offset = 0
            for line in text.split("\n"):
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
    spans = [(m.start(), m.end(), "SECRET:PrivateKey") for m in _PRIVATE_KEY_BLOCK.finditer(text)]
    complete = {start for start, _, _ in spans}
    for m in _PRIVATE_KEY_BEGIN.finditer(text):
        if m.start() not in complete:
            end = _PARAGRAPH_END.search(text, m.end())
            spans.append((m.start(), end.start() if end else len(text), "SECRET:PrivateKey"))
    spans += [(m.start(), m.end(), "SECRET:PrivateKey") for m in _PUTTY_KEY.finditer(text)]
    has_email = _EMAIL_GATE.search(text) is not None
    creds = []
    if has_email and "://" in text:
        creds = [(m.start(), m.end(), "SECRET:BasicAuthCredentials") for m in _URL_CREDENTIALS.finditer(text)]
    spans += creds + _plugin_spans(text)
    if has_email:
        # In `https://bob:pw@git.example.com` the "pw@git.example.com" is a URL, not an address.
        spans += [
            (m.start(), m.end(), EMAIL)
            for m in _EMAIL.finditer(text)
            if not any(s <= m.start() < e for s, e, _ in creds)
        ]
    for gate, regex in ((_IPV4_GATE, _IPV4), (_IPV6_GATE, _IPV6)):
        if gate.search(text):
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


def replace_mentions(text: str, known_logins: Iterable[str], salt: str = "") -> str:
    """Replace `@login` mentions of known logins by their pseudonym (see `mention_replacer`)."""
    return mention_replacer(known_logins, salt)(text)
