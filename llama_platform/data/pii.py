"""Find personal data in text: e-mails, phone numbers, IP addresses, payment cards, national IDs, IBANs.

E-mail addresses include the forms written to dodge harvesters (`john [at] example [dot] com`,
`bob at example dot com`, full-width `＠`); a URL's user name (`https://ci@host/`) is not one.

Every kind is found by a cheap regex for its shape and then checked the way its issuer defines it,
with well-kept libraries where there is one: `phonenumbers` (Google's libphonenumber metadata) for
phone numbers, `python-stdnum` for the Luhn check, the Chinese resident ID's ISO 7064 MOD 11-2 check
digit and birth date, US SSN ranges, and IBAN mod-97. The checks and a look at the words around a
match keep the look-alikes of bug reports: versions (`AssemblyVersion 1.2.3.4`), timestamps, hashes,
ids, `git@github.com:` remotes, `pkg@1.2.3`, `icon@2x.png`.
"""

from __future__ import annotations

import ipaddress
import re

import phonenumbers
from stdnum import iban as std_iban
from stdnum import luhn
from stdnum.cn import ric
from stdnum.us import ssn

Span = tuple[int, int, str]

EMAIL = "EMAIL"
IP_ADDRESS = "IP_ADDRESS"
PHONE = "PHONE"
CARD_NUMBER = "CARD_NUMBER"
NATIONAL_ID = "NATIONAL_ID"
IBAN = "IBAN"
KINDS = (EMAIL, IP_ADDRESS, PHONE, CARD_NUMBER, NATIONAL_ID, IBAN)

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])", re.ASCII)
# A file name with a density suffix (`logo@2x.png`) is not an address.
_NOT_MAIL_TLD = frozenset("png jpg jpeg gif svg webp ico bmp js mjs ts css map json lock html py rb go rs".split())
# Addresses written to dodge harvesters: `john [at] example [dot] com`, `jane.doe(at)example.org`,
# `bob at example dot com`, `name＠example.com` (full-width or small at sign). A plain-word " at "
# is English far more often than an address ("look at example"), so that form needs a spelled
# dot in the domain, a common top-level domain at the end and a local part that is no common
# word (`_obfuscated_emails`).
_OB_AT = r"(?:[ \t]*[\[({<][ \t]*(?i:at)[ \t]*[\])}>][ \t]*|[ \t]*[\uff20\ufe6b][ \t]*)"  # [at] (at) ＠
_OB_AT_WORD = r"[ \t]+(?i:at)[ \t]+"
_OB_SPELLED_DOT = r"(?:[ \t]*[\[({<][ \t]*(?i:dot)[ \t]*[\])}>][ \t]*|[ \t]+(?i:dot)[ \t]+)"
_OB_DOT = r"(?:" + _OB_SPELLED_DOT + r"|[.\uff0e])"
_OB_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_OB_LOCAL = r"(?<![\w.+%-])[A-Za-z0-9_%+-]+(?:" + _OB_DOT + r"[A-Za-z0-9_%+-]+)*"
_OBFUSCATED_EMAIL = re.compile(
    _OB_LOCAL + _OB_AT + _OB_LABEL + r"(?:" + _OB_DOT + _OB_LABEL + r")*" + _OB_DOT + r"[A-Za-z]{2,24}(?![\w-])"
)
# The plain-word form needs a spelled dot in its domain (`example dot com`): "look at example.com" is prose.
_SPELLED_EMAIL = re.compile(
    _OB_LOCAL + r"(" + _OB_AT_WORD + r")" + _OB_LABEL + r"(?:" + _OB_DOT + _OB_LABEL + r")*?" + _OB_SPELLED_DOT
    + _OB_LABEL + r"(?:" + _OB_DOT + _OB_LABEL + r")*(?![\w-])"
)
_COMMON_TLDS = frozenset(
    "com net org edu gov mil int io co ai dev app me info biz name pro xyz tech cloud online site email us uk cn de fr jp "
    "ru br in au ca nl es it ch se no fi dk pl eu be at cz kr tw hk sg nz za mx ar tr il gr pt hu ro ua vn id th my ph ie".split()
)
# Words that stand before " at " in prose ("look at", "good at", "is at"): not a local part.
_PROSE_BEFORE_AT = frozenset(
    "look looks looked looking stare glance glanced arrive arrived arrives here there is was are be been being were it "
    "this that these those me us him her them you we they i good bad great better best least most all once work home up "
    "down out aim aimed point points pointed hit fail fails failed failing stop stops stopped crash crashes crashed "
    "start starts started end ends ended set located available found run runs running hosted live lives stuck break "
    "breaks broke it's and or but not only even just now then still already also again exactly right left placed "
    "published posted see seen check checked shown listed mentioned defined declared thrown raised work works worked "
    "working stay stays stayed staying meet met employed hired interned studied study studies".split()
)
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)", re.ASCII)
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])", re.ASCII)
# Kept as is: they identify no one and say a lot in bug reports ("listening on 127.0.0.1").
_HARMLESS_IPS = {"127.0.0.1", "0.0.0.0", "::1", "::", "255.255.255.255"}
# Words before a dotted quad that make it a version, not an address (`AssemblyVersion("1.2.3.4")`,
# `version 1.0.0.1`, `==1.2.3.4`, `v 2.0.0.1`).
_VERSION_BEFORE = re.compile(
    r"(?i)(?:\b(?:version|ver|v|release|build|rev|revision|tag|firmware|fw|driver|sdk|api|runtime|kb|update|"
    r"python|node|java|dotnet|\.net|nuget|package|pkg)|[=<>~^]=?)[\"'`(\s:=]{0,3}$"
)
_IP_BEFORE = re.compile(r"(?i)(?:\bip|address|addr|host|server|ping|connect|listen|bind|from|to|proxy|dns|://)\W{0,4}\S{0,30}$")

# Phone candidates: international (`+86 138 1234 5678`, `0049 30 1234567`), grouped national
# (`(415) 555-2671`, `020 7946 0958`) or a bare Chinese mobile number (`13812345678`).
# Look-arounds are ASCII: Chinese text runs straight into a number ("手机13812345678").
_PHONE = re.compile(r"(?<![A-Za-z0-9_+/.:#=-])(?:\+|00)?[\d(][\d \t().-]{5,20}\d(?![A-Za-z0-9_/-]|[.:]\d)")
_CN_MOBILE = re.compile(r"(?:\+?86[\s-]?)?1[3-9]\d(?:[\s-]?\d{4}){2}")
_PHONE_CONTEXT = re.compile(
    r"(?i)(?:phone|tel|mobile|cell|call|fax|whatsapp|wechat|sms|contact|reach|number|电话|手机|联系|号码|微信)"
)
_PHONE_REGIONS = ("US", "GB", "DE", "FR", "IN", "CN", "JP", "BR", "AU", "CA", "ES", "IT", "NL", "RU")
# Numbers that are something else: versions, dates and times, ids and hashes nearby.
_NOT_PHONE_BEFORE = re.compile(r"(?i)(?:\b(?:version|ver|v|id|no\.|issue|pr|build|port|pid|line|sha|commit|order|ticket)|#)[\s:=#]{0,2}$")
_DATE_LIKE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{4}|\d{1,2}:\d{2}")

_CARD = re.compile(r"(?<![\w.-])\d(?:[ -]?\d){12,18}(?![\w-]|\.\d)", re.ASCII)
_CN_RIC = re.compile(r"(?<![A-Za-z0-9_])[1-9]\d{16}[\dXx](?![A-Za-z0-9_])")
_SSN = re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])", re.ASCII)
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?![A-Za-z0-9])")


def _before(text: str, start: int, n: int = 40) -> str:
    line_start = text.rfind("\n", 0, start) + 1
    return text[max(line_start, start - n) : start]


def _emails(text: str) -> list[Span]:
    out = []
    for m in _EMAIL.finditer(text):
        local, domain = m.group().rsplit("@", 1)
        after = text[m.end() : m.end() + 2]
        if local in ("git", "hg", "svn") or (after[:1] == ":" and after[1:2] not in ("", " ", "\n")):
            continue  # an scp-style remote: git@github.com:owner/repo.git
        if text.endswith("://", 0, m.start()):
            continue  # a URL's user name (`https://ci-bot@bitbucket.org/...`), not an address; keys there are secrets.py's
        if domain.rsplit(".", 1)[-1].lower() in _NOT_MAIL_TLD or re.match(r"\d+(?:\.\d+)?x\.", domain):
            continue
        out.append((m.start(), m.end(), EMAIL))
    return out


def _obfuscated_emails(text: str) -> list[Span]:
    out = [(m.start(), m.end(), EMAIL) for m in _OBFUSCATED_EMAIL.finditer(text)]
    for m in _SPELLED_EMAIL.finditer(text):
        local = text[m.start() : m.start(1)].lower()
        tld = re.split(r"[\s.\uff0e\])}>]", m.group())[-1].lower()
        if tld in _COMMON_TLDS and local not in _PROSE_BEFORE_AT:
            out.append((m.start(), m.end(), EMAIL))
    return out


def _is_version_quad(text: str, m: re.Match) -> bool:
    octets = m.group().split(".")
    if any(len(o) > 1 and o.startswith("0") for o in octets) or octets[0] == "0":
        return True  # `1.02.0.3`, `0.9.1.2`: not how addresses are written
    before = _before(text, m.start(), 30)
    if _VERSION_BEFORE.search(before) or re.match(r"-[A-Za-z]", text[m.end() : m.end() + 2]):
        return True
    # 1.2.3.4-style quads of single digits are versions unless the words around say "address".
    return all(len(o) == 1 for o in octets) and not _IP_BEFORE.search(before)


def _ips(text: str) -> list[Span]:
    out = []
    if "." in text:
        for m in _IPV4.finditer(text):
            try:
                ip = ipaddress.ip_address(m.group())
            except ValueError:
                continue
            if str(ip) not in _HARMLESS_IPS and not _is_version_quad(text, m):
                out.append((m.start(), m.end(), IP_ADDRESS))
    if "::" in text or text.count(":") >= 5:
        for m in _IPV6.finditer(text):
            groups = [g for g in m.group().split(":") if g]
            if len(groups) < 3:  # `std::vector`, `a::b`: too little of an address
                continue
            try:
                ip = ipaddress.ip_address(m.group())
            except ValueError:
                continue
            if str(ip) not in _HARMLESS_IPS:
                out.append((m.start(), m.end(), IP_ADDRESS))
    return out


def _valid_phone(candidate: str, regions: tuple[str | None, ...]) -> bool:
    for region in regions:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return True
    return False


def _phones(text: str) -> list[Span]:
    out = []
    for m in _PHONE.finditer(text):
        candidate = m.group()
        digits = sum(c.isdigit() for c in candidate)
        if not 7 <= digits <= 15 or _DATE_LIKE.search(candidate):
            continue
        before = _before(text, m.start())
        if _NOT_PHONE_BEFORE.search(before):
            continue
        if candidate.startswith(("+", "00")):
            ok = _valid_phone("+" + candidate.lstrip("+")[2 if candidate.startswith("00") else 0 :], (None,))
        elif _CN_MOBILE.fullmatch(candidate):
            ok = _valid_phone(candidate, ("CN",))
        elif _PHONE_CONTEXT.search(before) or re.fullmatch(r"\(\d{3}\) ?\d{3}[-.\s]\d{4}|\d{3}[-.]\d{3}[-.]\d{4}", candidate):
            # A national number: only with a word that says "phone", or in the North American
            # grouping, and only if some country's numbering plan accepts it.
            ok = _valid_phone(candidate, _PHONE_REGIONS)
        else:
            ok = False
        if ok:
            out.append((m.start(), m.end(), PHONE))
    return out


# Issuer prefixes (IIN) and lengths of the major card networks.
_CARD_IIN = re.compile(
    r"4\d{12}(?:\d{3}){0,2}|5[1-5]\d{14}|2(?:2[2-9][1-9]|2[3-9]\d|[3-6]\d\d|7[01]\d|720)\d{12}|3[47]\d{13}"
    r"|6(?:011|5\d\d|4[4-9]\d)\d{12,15}|35(?:2[89]|[3-8]\d)\d{12,15}|62\d{14,17}|3(?:0[0-5]|[68]\d)\d{11,16}"
)


def _cards(text: str) -> list[Span]:
    out = []
    for m in _CARD.finditer(text):
        digits = re.sub(r"[ -]", "", m.group())
        groups = re.split(r"[ -]", m.group())
        if len(groups) > 1 and not all(2 <= len(g) <= 6 for g in groups):
            continue  # `1 2 3 4 ...` or an id with one stray dash
        if len(set(digits)) > 1 and _CARD_IIN.fullmatch(digits) and luhn.is_valid(digits):
            out.append((m.start(), m.end(), CARD_NUMBER))
    return out


# Province codes (GB/T 2260): the ID's first two digits.
_CN_PROVINCES = frozenset("11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65 71 81 82".split())


def _valid_cn_ric(number: str) -> bool:
    """A Chinese resident ID: province, birth date and the ISO 7064 MOD 11-2 check digit.

    Not `ric.is_valid`: it also wants the county code to have existed at the birth date, and
    counties are renamed and created all the time (a Shenzhen district from 1990 holds IDs of
    people born before it), so real IDs would be kept.
    """
    number = number.upper()
    if number[:2] not in _CN_PROVINCES or ric.calc_check_digit(number) != number[-1]:
        return False
    try:
        ric.get_birth_date(number)
    except ValueError:  # stdnum's InvalidComponent is a ValueError
        return False
    return True


def _national_ids(text: str) -> list[Span]:
    out = []
    for m in _CN_RIC.finditer(text):
        if _valid_cn_ric(m.group()):
            out.append((m.start(), m.end(), NATIONAL_ID))
    if "-" in text:
        for m in _SSN.finditer(text):
            if ssn.is_valid(m.group()) and not _NOT_PHONE_BEFORE.search(_before(text, m.start())):
                out.append((m.start(), m.end(), NATIONAL_ID))
    return out


def _ibans(text: str) -> list[Span]:
    return [(m.start(), m.end(), IBAN) for m in _IBAN.finditer(text) if std_iban.is_valid(m.group())]


# What the redactor's one Hyperscan scan looks for on behalf of each check below (a superset of
# what the check's regex matches): most texts hold none of these, and skip the checks.
PREFILTER = {
    "pii:email": r"[A-Za-z0-9._%+-]@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2}",
    "pii:email_obfuscated": r"(?i)[\[({<][ \t]*at[ \t]*[\])}>]|\xef\xbc\xa0|\xef\xb9\xab",
    "pii:email_spelled": r"(?i)[ \t]at[ \t][^\n]*[ \t\[({<]dot[ \t\])}>]",
    "pii:ipv4": r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}",
    "pii:ipv6": r"[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:|::",
    "pii:phone": r"\d[\d \t().-]{5,20}\d",
    "pii:card": r"\d(?:[ -]?\d){12,18}",
    "pii:national_id": r"\d{17}[\dXx]|\d{3}-\d{2}-\d{4}",
    "pii:iban": r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2}",
}


def pii_spans(text: str, hits: set[str] | None = None) -> list[Span]:
    """Every piece of personal data in `text`: (start, end, kind).

    `hits`: the `PREFILTER` names that matched `text` (None: run every check).
    """
    def on(name: str) -> bool:
        return hits is None or name in hits

    spans = _emails(text) if on("pii:email") and "@" in text else []
    if on("pii:email_obfuscated") or on("pii:email_spelled"):
        spans += _obfuscated_emails(text)
    if on("pii:ipv4") or on("pii:ipv6"):
        spans += _ips(text)
    if on("pii:phone"):
        spans += _phones(text)
    if on("pii:card"):
        spans += _cards(text)
    if on("pii:national_id"):
        spans += _national_ids(text)
    if on("pii:iban"):
        spans += _ibans(text)
    return spans
