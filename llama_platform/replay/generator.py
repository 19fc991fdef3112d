"""Deterministic generator of the shipped issue corpus (what the replay forge serves).

    python -m llama_platform.replay.generator --out llama_platform/replay/corpus [--scale 1.0] [--comments-factor 1.0]

Output: one gzip'd JSON file per repo, `<source>__<owner>__<name>.json.gz`, holding
`{"source", "repo", "issues": [...], "comments": [...]}` in each forge's wire format (GitHub REST v3;
Gitee API v5), plus `manifest.json` describing what was planted (malformed records, near-duplicate
groups, secrets, bots) so downstream tests can check quarantine, dedup and redaction against it.
Everything comes from `random.Random` seeded per repo and a fixed "now" (2026-10-01T00:00:00Z): no
wall clock, no hash randomisation, gzip mtime 0, so the bytes are reproducible.

Repos (fictional projects):
  github:tensorflux/tensorflux        Python ML library, English, GitHub default labels
  github:weavekit/weave               Go CLI, English, "type: ..." labels
  gitee:lingyun-dev/lingyun           Java framework, Chinese text and labels
  gitee:tensorflux-mirror/tensorflux  Gitee mirror of the GitHub tensorflux repo (near-duplicates)

Label -> kind mapping used (KIND_LABELS below; every non-PR issue carries exactly one of these):
  bug:      bug, type: bug, 缺陷
  feature:  enhancement, feature request, type: feature, 需求, 新功能
  question: question, type: question, support, 问题, 咨询
  docs:     documentation, docs, type: docs, 文档
Other labels (good first issue, help wanted, needs-triage, stale, duplicate, wontfix, dependencies,
area: ...) carry no kind. Gitee's `issue_type` (缺陷/需求/任务) is set consistently with the kind.

Traps planted for the pipeline:
  * ~6% label noise: the text reads like another kind than the label says.
  * ~1% malformed issues: null title, non-string body, missing created_at, invalid state, and a
    ~70 KB body (well-formed JSON; the cleaner should quarantine it as too large).
  * near-duplicates within a repo, across the two GitHub repos, and the Gitee mirror.
  * bots: dependabot[bot] / github-actions[bot] (type "Bot"), codecov-bot (type "Bot", no [bot]
    suffix), Gitee's ci-robot (type "User": Gitee does not flag bots), and human comments that only
    invoke a bot ("@dependabot rebase", "/retest").
  * fake secrets (ghp_ tokens, AKIA key ids, RSA private keys, https://user:pass@host URLs) and
    emails pasted into bodies/comments, and email-reply footers in comments.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from llama_platform.replay import templates as T
from llama_platform.replay.corpus import corpus_filename, dump_json_gz

SEED = "llama-platform-corpus-v1"
FIXED_NOW = datetime(2026, 10, 1, tzinfo=timezone.utc)
WINDOW = timedelta(days=730)
CST = timezone(timedelta(hours=8))
GH_API = "https://api.github.com"
GITEE_API = "https://gitee.com/api/v5"
MANIFEST_NAME = "manifest.json"

KIND_LABELS: dict[str, tuple[str, ...]] = {
    "bug": ("bug", "type: bug", "缺陷"),
    "feature": ("enhancement", "feature request", "type: feature", "需求", "新功能"),
    "question": ("question", "type: question", "support", "问题", "咨询"),
    "docs": ("documentation", "docs", "type: docs", "文档"),
}
LABEL_TO_KIND = {name: kind for kind, names in KIND_LABELS.items() for name in names}

# What `records.normalise` raises for each malformed kind (None: well-formed for normalise; the
# cleaner must quarantine it by size).
MALFORMED_REASONS = {
    "null_title": "bad_field",
    "nonstring_body": "bad_field",
    "missing_created_at": "bad_timestamp",
    "invalid_state": "bad_field",
    "huge_body": None,
}
BOT_LOGINS = ("dependabot[bot]", "github-actions[bot]", "codecov-bot", "ci-robot")

LABEL_COLORS = {
    "bug": "d73a4a", "type: bug": "d73a4a", "缺陷": "d73a4a",
    "enhancement": "a2eeef", "feature request": "a2eeef", "type: feature": "a2eeef", "需求": "a2eeef", "新功能": "84b6eb",
    "question": "d876e3", "type: question": "d876e3", "support": "cc317c", "问题": "d876e3", "咨询": "d876e3",
    "documentation": "0075ca", "docs": "0075ca", "type: docs": "0075ca", "文档": "0075ca",
}


@dataclass(frozen=True)
class RepoSpec:
    source: str
    repo: str
    domain: str
    issues: int
    pulls: int = 0
    language: str = "en"
    # kind -> [(label name, weight)]
    labels: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    mirror_of: str | None = None
    malformed: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.source}:{self.repo}"

    @property
    def filename(self) -> str:
        return corpus_filename(self.source, self.repo)


REPO_SPECS = (
    RepoSpec(
        "github", "tensorflux/tensorflux", "tensorflux", issues=720, pulls=90,
        labels={"bug": [("bug", 9), ("type: bug", 1)], "feature": [("enhancement", 7), ("feature request", 3)],
                "question": [("question", 1)], "docs": [("documentation", 8), ("docs", 2)]},
        malformed=("null_title", "nonstring_body", "missing_created_at", "invalid_state", "huge_body",
                   "null_title", "invalid_state"),
    ),
    RepoSpec(
        "github", "weavekit/weave", "weave", issues=480, pulls=60,
        labels={"bug": [("type: bug", 1)], "feature": [("type: feature", 3), ("feature request", 1)],
                "question": [("type: question", 6), ("support", 4)], "docs": [("type: docs", 1)]},
        malformed=("nonstring_body", "missing_created_at", "invalid_state", "null_title", "missing_created_at"),
    ),
    RepoSpec(
        "gitee", "lingyun-dev/lingyun", "lingyun", issues=360, language="zh",
        labels={"bug": [("缺陷", 8), ("bug", 2)], "feature": [("需求", 7), ("新功能", 3)],
                "question": [("问题", 6), ("咨询", 3), ("question", 1)], "docs": [("文档", 1)]},
        malformed=("invalid_state", "missing_created_at", "huge_body", "nonstring_body"),
    ),
    RepoSpec(
        "gitee", "tensorflux-mirror/tensorflux", "tensorflux", issues=190, mirror_of="github:tensorflux/tensorflux",
        malformed=("null_title", "invalid_state"),
    ),
)

KIND_WEIGHTS = {"bug": 40, "feature": 25, "question": 20, "docs": 15}
LABEL_NOISE = 0.06
CLOSE_PROB = {"bug": 0.7, "feature": 0.45, "question": 0.8, "docs": 0.75}
GITEE_ISSUE_TYPE = {"bug": "缺陷", "feature": "需求", "question": "任务", "docs": "任务"}


# ---------------------------------------------------------------------------------------------
# Forge-neutral intermediate form.
# ---------------------------------------------------------------------------------------------


@dataclass
class Person:
    login: str
    name: str
    association: str = "NONE"  # GitHub author_association for this repo
    type: str = "User"


@dataclass
class CommentDraft:
    author: Person
    body: str
    created: datetime
    updated: datetime
    id: int = 0
    pii: str | None = None  # kind of planted secret/email, for the manifest


@dataclass
class IssueDraft:
    kind: str | None  # None for PRs without a kind label
    title: Any
    body: Any
    author: Person
    created: datetime
    labels: list[str]
    is_pr: bool = False
    pr_merged: bool = False
    comments: list[CommentDraft] = field(default_factory=list)
    state: str = "open"  # open | closed (GitHub) ; mapped to Gitee's four states on render
    closed: datetime | None = None
    updated: datetime | None = None
    reactions: int = 0
    number: str = ""
    id: int = 0
    malformed: str | None = None
    dup_of: str | None = None  # issue key this one near-duplicates
    pii: list[str] = field(default_factory=list)  # kinds of planted secrets/emails in the body


def _weighted(rng: random.Random, pairs: list[tuple[str, int]]) -> str:
    names, weights = zip(*pairs)
    return rng.choices(names, weights=weights)[0]


def _ts_seconds(dt: datetime) -> datetime:
    return dt.replace(microsecond=0)


def _gh_ts(dt: datetime | None) -> str | None:
    return None if dt is None else dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _gitee_ts(dt: datetime | None) -> str | None:
    return None if dt is None else dt.astimezone(CST).isoformat(timespec="seconds")


def _perturb(rng: random.Random, text: str | None, zh: bool = False) -> str | None:
    """A near-duplicate: the same text with one or two small edits."""
    if not text:
        return text
    edits = rng.sample(["version", "prefix", "suffix", "typo", "drop"], rng.randint(1, 2))
    for edit in edits:
        if edit == "version":
            text = re.sub(r"\d+\.\d+\.\d+", lambda m: m.group(0)[:-1] + str(rng.randint(0, 9)), text, count=1)
        elif edit == "prefix":
            prefixes = ["同样的问题，", "重新提一下：", "你好，"] if zh else ["Same problem here. ", "Reposting: ", "Hi, ", "I think this is still an issue. "]
            text = rng.choice(prefixes) + text
        elif edit == "suffix":
            suffixes = ["\n\n请问有进展吗？", "\n\n最新版本仍然存在。", "谢谢！"] if zh else ["\n\nAny update on this?", "\n\nStill happens on the latest release.", " Thanks!"]
            text = text + rng.choice(suffixes)
        elif edit == "typo":
            words = text.split(" ")
            i = rng.randrange(len(words))
            w = words[i]
            if len(w) > 3:
                j = rng.randrange(len(w) - 1)
                words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
            text = " ".join(words)
        elif edit == "drop":
            paras = text.split("\n\n")
            short = [k for k in range(1, len(paras)) if len(paras[k]) < 200]
            if len(paras) > 3 and short:
                paras.pop(rng.choice(short))
            text = "\n\n".join(paras)
    return text


# ---------------------------------------------------------------------------------------------
# Secrets, emails, footers.
# ---------------------------------------------------------------------------------------------


def _secret_snippet(rng: random.Random, kind: str, who: str, zh: bool = False) -> str:
    if zh and kind == "email":
        dom = rng.choice(["example.com", "example.cn", "mail.example.net"])
        return rng.choice([f"需要完整日志的话可以发邮件给我：{who}@{dom}", f"（联系邮箱 {who}@{dom}）"])
    if zh:
        return rng.choice(["我的配置如下：\n", "相关配置：\n", ""]) + _secret_snippet(rng, kind, who)
    if kind == "github_token":
        tok = "ghp_" + T.random_token(rng, T.ALNUM, 36)
        return rng.choice([f"I exported `GITHUB_TOKEN={tok}` before running it.",
                           f'```\n[auth]\ntoken = "{tok}"\n```', f"Using token {tok} for the API calls."])
    if kind == "aws_key":
        key = "AKIA" + T.random_token(rng, T.B32, 16)
        sec = T.random_token(rng, T.ALNUM + "/+", 40)
        return f"```\n[default]\naws_access_key_id = {key}\naws_secret_access_key = {sec}\nregion = us-east-1\n```"
    if kind == "private_key":
        lines = [T.random_token(rng, T.ALNUM + "/+", 64) for _ in range(rng.randint(4, 8))]
        return "Here is the key file I'm loading:\n```\n-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END RSA PRIVATE KEY-----\n```"
    if kind == "url_credentials":
        pw = T.random_token(rng, T.ALNUM, rng.randint(10, 18))
        host = rng.choice(["registry.internal.example.com", "git.example.org", "pypi.corp.example.net", "10.0.3.17:8081"])
        return f"My index URL is `https://{who}:{pw}@{host}/simple/` in case it matters."
    if kind == "email":
        dom = rng.choice(["example.com", "example.org", "mail.example.net", "corp.example.com"])
        return rng.choice([f"You can reach me at {who}@{dom} if you need the full logs.",
                           f"(contact: {who.replace('-', '.')}@{dom})"])
    raise ValueError(kind)


SECRET_KINDS = ("github_token", "aws_key", "private_key", "url_credentials")


def _email_footer(rng: random.Random, person: Person, quote_text: str, when: datetime) -> tuple[str, bool]:
    tpl = rng.choice(T.EMAIL_FOOTERS)
    email = f"{person.login.replace('-', '.').replace('_', '.')}@{rng.choice(['example.com', 'example.org'])}"
    text = tpl.format(
        date=when.strftime("%a, %b %d, %Y at %I:%M %p"), name=person.name, quote=quote_text[:120].replace("\n", " "),
        company=rng.choice(["Example Corp", "Acme Analytics", "Initech"]), email=email, phone=f"{rng.randint(100, 999)} {rng.randint(1000, 9999)}",
    )
    return text, "{email}" in tpl


# ---------------------------------------------------------------------------------------------
# Generation of one repo's drafts.
# ---------------------------------------------------------------------------------------------


class RepoBuilder:
    def __init__(self, spec: RepoSpec, scale: float, comments_factor: float = 1.0):
        self.spec = spec
        self.comments_factor = comments_factor
        self.rng = random.Random(f"{SEED}:{spec.key}")
        self.domain = T.DOMAINS[spec.domain]
        self.zh = spec.language == "zh"
        self.n_issues = max(1, round(spec.issues * scale))
        self.n_pulls = round(spec.pulls * scale)
        people = T.make_logins(self.rng, 180, chinese=self.zh)
        self.maintainers = [Person(l, n, "MEMBER") for l, n in people[:5]]
        self.maintainers[0].association = "OWNER"
        self.users = [Person(l, n, self.rng.choice(["NONE", "NONE", "CONTRIBUTOR", "FIRST_TIME_CONTRIBUTOR"])) for l, n in people[5:]]
        # Zipf-ish activity: a few users file many issues.
        self.user_weights = [1.0 / (i + 1) ** 0.8 for i in range(len(self.users))]

    # -- people --
    def user(self) -> Person:
        return self.rng.choices(self.users, weights=self.user_weights)[0]

    def maintainer(self) -> Person:
        return self.rng.choice(self.maintainers)

    # -- time --
    def created_times(self, n: int) -> list[datetime]:
        start = FIXED_NOW - WINDOW
        # sqrt skews activity toward recent months, like a growing project.
        secs = [WINDOW.total_seconds() * math.sqrt(self.rng.random()) for _ in range(n)]
        return sorted(_ts_seconds(start + timedelta(seconds=min(s, WINDOW.total_seconds() - 3600))) for s in secs)

    def later(self, t: datetime, mean_hours: float) -> datetime:
        return _ts_seconds(t + timedelta(seconds=60 + self.rng.expovariate(1.0 / (mean_hours * 3600))))

    # -- text --
    def text(self, kind: str) -> tuple[str, str]:
        ctx = T.new_ctx(self.rng, self.domain)
        if self.zh:
            return T.zh_title(self.rng, kind, ctx), T.zh_body(self.rng, kind, ctx, self.spec.domain)
        return T.en_title(self.rng, kind, ctx), T.en_body(self.rng, kind, ctx, self.spec.domain)

    def reply(self, kind: str) -> str:
        ctx = T.new_ctx(self.rng, self.domain)
        pool = (T.ZH_REPLIES if self.zh else T.EN_REPLIES)[kind]
        return self.rng.choice(pool).format_map(ctx)

    def kind_label(self, kind: str) -> str:
        return _weighted(self.rng, self.spec.labels[kind])

    def build(self, earlier: list[tuple[str, IssueDraft]]) -> list[IssueDraft]:
        rng = self.rng
        times = self.created_times(self.n_issues + self.n_pulls)
        pr_slots = set(rng.sample(range(len(times)), self.n_pulls))
        drafts: list[IssueDraft] = []
        for i, created in enumerate(times):
            d = self.pull_request(created) if i in pr_slots else self.issue(created, drafts, earlier)
            drafts.append(d)
        return drafts

    def issue(self, created: datetime, so_far: list[IssueDraft], earlier: list[tuple[str, IssueDraft]]) -> IssueDraft:
        rng = self.rng
        kind = rng.choices(list(KIND_WEIGHTS), weights=list(KIND_WEIGHTS.values()))[0]
        # Label noise, as on real trackers (a "bug" that is really a usage question...): the text
        # follows another kind than the label, so no model can be perfect.
        text_kind = rng.choice([k for k in KIND_WEIGHTS if k != kind]) if rng.random() < LABEL_NOISE else kind
        title, body = self.text(text_kind)
        dup_of = None
        own_issues = [d for d in so_far if not d.is_pr and d.dup_of is None]
        roll = rng.random()
        if roll < 0.035 and own_issues:
            src = rng.choice(own_issues)
            kind, title, body, dup_of = src.kind, _perturb(rng, src.title, self.zh), _perturb(rng, src.body, self.zh), f"#{id(src)}"
        elif roll < 0.045 and earlier and not self.zh:
            key, src = rng.choice(earlier)
            kind, title, body, dup_of = src.kind, _perturb(rng, src.title), _perturb(rng, src.body), key
        author = self.user()
        d = IssueDraft(kind=kind, title=title, body=body, author=author, created=created, labels=[self.kind_label(kind)],
                       dup_of=dup_of)
        if rng.random() < 0.02:
            d.body = None  # an empty issue body is legitimately null on both forges
        self.plant_pii(d)
        self.extra_labels(d)
        self.add_comments(d)
        self.close(d)
        d.reactions = rng.choice([0, 0, 0, 1, 2, 5, 12]) if kind == "feature" else rng.choice([0, 0, 0, 0, 1, 2])
        return d

    def plant_pii(self, d: IssueDraft) -> None:
        rng = self.rng
        if d.body is None or d.dup_of:  # keep near-duplicates near
            return
        r = rng.random()
        if r < 0.045:
            kind = rng.choice(SECRET_KINDS)
            d.body = d.body + "\n\n" + _secret_snippet(rng, kind, d.author.login, self.zh)
            d.pii.append(kind)
        elif r < 0.09:
            d.body = d.body + "\n\n" + _secret_snippet(rng, "email", d.author.login, self.zh)
            d.pii.append("email")

    def extra_labels(self, d: IssueDraft) -> None:
        rng = self.rng
        extras = []
        if d.kind == "docs" and rng.random() < 0.3:
            extras.append("good first issue")
        if d.kind in ("bug", "feature") and rng.random() < 0.12:
            extras.append("help wanted")
        if rng.random() < 0.1:
            extras.append("needs-triage" if not self.zh else "待确认")
        if not self.zh and rng.random() < 0.15:
            extras.append("area: " + rng.choice(["cli", "core", "io", "perf", "api"]))
        d.labels.extend(extras)

    def add_comments(self, d: IssueDraft) -> None:
        rng = self.rng
        t = d.created
        if self.zh and rng.random() < 0.4:
            t = self.later(t, 0.05)
            d.comments.append(CommentDraft(Person("ci-robot", "ci-robot", "NONE", "User"), T.GITEE_WELCOME_BOT, t, t))
        # comments_factor (benchmarks) scales the count without an extra random draw, so 1.0
        # reproduces the shipped corpus byte for byte.
        n = round(rng.choices(range(6), weights=[22, 26, 20, 14, 10, 8])[0] * self.comments_factor)
        participants = [d.author, self.maintainer(), self.user(), self.user()]
        for j in range(n):
            t = self.later(t, 30)
            if t >= FIXED_NOW:
                break
            who = participants[0] if j % 2 == 1 and rng.random() < 0.6 else rng.choice(participants[1:])
            body = self.reply(d.kind or "bug")
            pii = None
            if not self.zh and rng.random() < 0.06:
                footer, has_email = _email_footer(rng, who, d.body or d.title or "", t)
                body += footer
                pii = "email" if has_email else None
            elif rng.random() < 0.012:
                pii = rng.choice(SECRET_KINDS)
                body += "\n\n" + _secret_snippet(rng, pii, who.login, self.zh)
            elif self.zh and rng.random() < 0.04:
                body = "/retest"  # only invokes a bot
            edited = t + timedelta(minutes=rng.randint(1, 300)) if rng.random() < 0.1 else t
            d.comments.append(CommentDraft(who, body, t, min(edited, FIXED_NOW - timedelta(seconds=1)), pii=pii))
        if not self.zh and rng.random() < 0.08 and (FIXED_NOW - t) > timedelta(days=60):
            st = _ts_seconds(t + timedelta(days=60, minutes=rng.randint(0, 600)))
            d.comments.append(CommentDraft(Person("github-actions[bot]", "github-actions[bot]", "NONE", "Bot"), T.STALE_BOT, st, st))
            d.labels.append("stale")

    def close(self, d: IssueDraft) -> None:
        rng = self.rng
        last = max([d.created] + [c.created for c in d.comments])
        if rng.random() < CLOSE_PROB.get(d.kind or "bug", 0.8):
            closed = self.later(last, 48)
            if closed < FIXED_NOW:
                d.state, d.closed = "closed", closed
                if d.dup_of and rng.random() < 0.5:
                    d.labels.append("duplicate")
                if d.kind == "feature" and rng.random() < 0.2:
                    d.labels.append("wontfix")
        stamps = [d.created] + [c.updated for c in d.comments] + ([d.closed] if d.closed else [])
        d.updated = min(_ts_seconds(max(stamps) + timedelta(seconds=rng.randint(0, 3600))), FIXED_NOW - timedelta(seconds=1))

    def pull_request(self, created: datetime) -> IssueDraft:
        rng = self.rng
        ctx = T.new_ctx(rng, self.domain)
        if rng.random() < 0.35:
            dep = ctx["dep"]
            a = f"{rng.randint(1, 5)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}"
            b = f"{a.split('.')[0]}.{int(a.split('.')[1]) + rng.randint(1, 3)}.0"
            bot = Person("dependabot[bot]", "dependabot[bot]", "CONTRIBUTOR", "Bot")
            d = IssueDraft(kind=None, title=f"Bump {dep} from {a} to {b}",
                           body=f"Bumps [{dep}](https://github.com/{dep}) from {a} to {b}.\n\nDependabot will resolve any "
                                "conflicts with this PR as long as you don't alter it yourself. You can also trigger a "
                                "rebase manually by commenting `@dependabot rebase`.",
                           author=bot, created=created, labels=["dependencies"], is_pr=True)
            t = created
            if rng.random() < 0.5:
                t = self.later(t, 20)
                d.comments.append(CommentDraft(self.maintainer(), "@dependabot rebase", t, t))
                t = self.later(t, 0.1)
                d.comments.append(CommentDraft(bot, f"Looks like {dep} is up-to-date now, so this is no longer needed." if rng.random() < 0.3
                                               else "Rebasing this PR now.", t, t))
        else:
            kind = rng.choice(["bug", "feature", "docs"])
            prefix = {"bug": "Fix", "feature": "Add", "docs": "docs: fix"}[kind]
            topic = {"bug": f"{ctx['func']} when {ctx['condition']}", "feature": ctx["feature"], "docs": f"typo in {ctx['doc_page']}"}[kind]
            author = self.user() if rng.random() < 0.6 else self.maintainer()
            d = IssueDraft(kind=None, title=f"{prefix} {topic}",
                           body=f"Fixes #{rng.randint(1, 500)}\n\n## Changes\n- update `{ctx['func']}`\n- add tests",
                           author=author, created=created, labels=[self.kind_label(kind)] if rng.random() < 0.5 else [], is_pr=True)
            t = created
            if rng.random() < 0.6:
                t = self.later(t, 0.3)
                body = T.CODECOV.format(repo=self.spec.repo, number="{number}", cov=f"{rng.uniform(70, 95):.2f}",
                                        sha1=T.random_token(rng, T.HEX, 7), sha2=T.random_token(rng, T.HEX, 7))
                d.comments.append(CommentDraft(Person("codecov-bot", "codecov-bot", "NONE", "Bot"), body, t, t))
            for _ in range(rng.randint(0, 3)):
                t = self.later(t, 24)
                if t >= FIXED_NOW:
                    break
                d.comments.append(CommentDraft(self.maintainer(), rng.choice(["LGTM, thanks!", "Could you add a test?",
                                                                            "Please rebase on main.", "Nice, merging."]), t, t))
        if rng.random() < 0.8:
            closed = self.later(max([created] + [c.created for c in d.comments]), 24)
            if closed < FIXED_NOW:
                d.state, d.closed, d.pr_merged = "closed", closed, rng.random() < 0.85
        stamps = [d.created] + [c.updated for c in d.comments] + ([d.closed] if d.closed else [])
        d.updated = min(max(stamps), FIXED_NOW - timedelta(seconds=1))
        return d


def _mirror_drafts(spec: RepoSpec, scale: float, original: list[IssueDraft], original_key: str) -> list[IssueDraft]:
    """Issues synced from the GitHub repo: same text (sometimes with a sync footer), shifted times."""
    rng = random.Random(f"{SEED}:{spec.key}")
    pool = [d for d in original if not d.is_pr and d.malformed is None]
    n = min(len(pool), max(1, round(spec.issues * scale)))
    chosen = sorted(rng.sample(range(len(pool)), n))
    sync_bot = Person("tensorflux-sync", "同步机器人", "NONE", "User")
    out = []
    for i in chosen:
        src = pool[i]
        body = src.body
        if body is not None and rng.random() < 0.3:
            body = body + f"\n\n---\n本 issue 同步自 GitHub: https://github.com/{original_key.split(':', 1)[1]}/issues/{src.number}"
        author = Person(src.author.login, src.author.name, "NONE") if rng.random() < 0.5 else sync_bot
        shift = timedelta(minutes=rng.randint(2, 90))
        d = IssueDraft(kind=src.kind, title=src.title, body=body, author=author, created=src.created + shift,
                       labels=list(src.labels), state=src.state, dup_of=f"{original_key}#{src.number}")
        for c in src.comments:
            if c.author.type != "Bot" and rng.random() < 0.6 and c.created + shift < FIXED_NOW:
                d.comments.append(CommentDraft(Person(c.author.login, c.author.name), c.body, c.created + shift,
                                               min(c.updated + shift, FIXED_NOW - timedelta(seconds=1)), pii=c.pii))
        d.closed = min(src.closed + shift, FIXED_NOW - timedelta(seconds=1)) if src.closed else None
        stamps = [d.created] + [c.updated for c in d.comments] + ([d.closed] if d.closed else [])
        d.updated = min(max(stamps) + timedelta(seconds=rng.randint(0, 600)), FIXED_NOW - timedelta(seconds=1))
        d.pii = list(src.pii)
        out.append(d)
    return sorted(out, key=lambda d: d.created)


def _huge_body(rng: random.Random) -> str:
    lines = ["Full log attached below (sorry, it's long):", "```"]
    size = 0
    step = 0
    while size < 70_000:
        line = (f"2026-03-{rng.randint(1, 28):02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d},"
                f"{rng.randint(0, 999):03d} DEBUG worker-{rng.randint(0, 15)} step={step} loss={rng.uniform(0.1, 3.0):.5f} "
                f"lr={rng.uniform(1e-5, 1e-3):.2e} mem={rng.randint(1000, 9000)}MiB")
        lines.append(line)
        size += len(line) + 1
        step += 1
    lines.append("```")
    return "\n".join(lines)


def _apply_malformed(spec: RepoSpec, drafts: list[IssueDraft]) -> None:
    rng = random.Random(f"{SEED}:{spec.key}:malformed")
    # Keep duplicates intact (dedup tests rely on them), except in the mirror where all are copies.
    candidates = [d for d in drafts if not d.is_pr and (d.dup_of is None or spec.mirror_of)]
    for kind, d in zip(spec.malformed, rng.sample(candidates, min(len(spec.malformed), len(candidates)))):
        d.malformed = kind
        if kind == "null_title":
            d.title = None
        elif kind == "nonstring_body":
            d.body = rng.choice([{"text": d.body}, ["see", "attached"], 12345])
        elif kind == "huge_body":
            d.body = (d.body or "") + "\n\n" + _huge_body(rng)
        # missing_created_at and invalid_state are applied while rendering the wire format.


# ---------------------------------------------------------------------------------------------
# Wire formats.
# ---------------------------------------------------------------------------------------------


def _node_id(rng: random.Random, prefix: str) -> str:
    return prefix + T.random_token(rng, T.ALNUM + "_-", 16)


class GitHubRenderer:
    def __init__(self, spec: RepoSpec):
        self.spec = spec
        self.repo = spec.repo
        self.rng = random.Random(f"{SEED}:{spec.key}:render")
        self.user_ids: dict[str, int] = {}
        self.label_ids: dict[str, int] = {}

    def user(self, p: Person) -> dict:
        uid = self.user_ids.setdefault(p.login, 1_000_000 + len(self.user_ids) * 7919 + self.rng.randint(0, 7000))
        return {
            "login": p.login, "id": uid, "node_id": f"MDQ6VXNlcj{uid}", "avatar_url": f"https://avatars.githubusercontent.com/u/{uid}?v=4",
            "gravatar_id": "", "url": f"{GH_API}/users/{quote(p.login)}", "html_url": f"https://github.com/{quote(p.login)}",
            "type": p.type, "user_view_type": "public", "site_admin": False,
        }

    def label(self, name: str) -> dict:
        lid = self.label_ids.setdefault(name, 5_000_000_000 + len(self.label_ids) * 104_729)
        return {
            "id": lid, "node_id": f"LA_kwDO{lid}", "url": f"{GH_API}/repos/{self.repo}/labels/{quote(name)}", "name": name,
            "color": LABEL_COLORS.get(name, "ededed"), "default": name in ("bug", "enhancement", "question", "documentation"),
            "description": None,
        }

    def reactions(self, url: str, plus: int) -> dict:
        return {"url": f"{url}/reactions", "total_count": plus, "+1": plus, "-1": 0, "laugh": 0, "hooray": 0,
                "confused": 0, "heart": 0, "rocket": 0, "eyes": 0}

    def issue(self, d: IssueDraft) -> dict:
        api = f"{GH_API}/repos/{self.repo}/issues/{d.number}"
        state_reason = None
        if d.state == "closed" and not d.is_pr:
            state_reason = "not_planned" if ("wontfix" in d.labels or "duplicate" in d.labels) else "completed"
        out: dict[str, Any] = {
            "url": api, "repository_url": f"{GH_API}/repos/{self.repo}", "labels_url": f"{api}/labels{{/name}}",
            "comments_url": f"{api}/comments", "events_url": f"{api}/events",
            "html_url": f"https://github.com/{self.repo}/{'pull' if d.is_pr else 'issues'}/{d.number}",
            "id": d.id, "node_id": _node_id(self.rng, "PR_kwDO" if d.is_pr else "I_kwDO"), "number": int(d.number),
            "title": d.title, "user": self.user(d.author), "labels": [self.label(n) for n in d.labels],
            "state": "reopened" if d.malformed == "invalid_state" else d.state, "locked": False,
            "assignee": None, "assignees": [], "milestone": None, "comments": len(d.comments),
            "created_at": _gh_ts(d.created), "updated_at": _gh_ts(d.updated), "closed_at": _gh_ts(d.closed),
            "author_association": d.author.association, "type": None, "active_lock_reason": None,
        }
        if d.is_pr:
            out["draft"] = False
            out["pull_request"] = {
                "url": f"{GH_API}/repos/{self.repo}/pulls/{d.number}", "html_url": f"https://github.com/{self.repo}/pull/{d.number}",
                "diff_url": f"https://github.com/{self.repo}/pull/{d.number}.diff",
                "patch_url": f"https://github.com/{self.repo}/pull/{d.number}.patch",
                "merged_at": _gh_ts(d.closed) if d.pr_merged else None,
            }
        out.update({
            "body": d.body, "closed_by": None, "reactions": self.reactions(api, d.reactions), "timeline_url": f"{api}/timeline",
            "performed_via_github_app": None, "state_reason": state_reason,
        })
        if d.malformed == "missing_created_at":
            del out["created_at"]
        return out

    def comment(self, d: IssueDraft, c: CommentDraft) -> dict:
        url = f"{GH_API}/repos/{self.repo}/issues/comments/{c.id}"
        return {
            "url": url, "html_url": f"https://github.com/{self.repo}/issues/{d.number}#issuecomment-{c.id}",
            "issue_url": f"{GH_API}/repos/{self.repo}/issues/{d.number}", "id": c.id, "node_id": _node_id(self.rng, "IC_kwDO"),
            "user": self.user(c.author), "created_at": _gh_ts(c.created), "updated_at": _gh_ts(c.updated),
            "author_association": c.author.association, "body": c.body.replace("{number}", d.number),
            "reactions": self.reactions(url, 0), "performed_via_github_app": None,
        }


class GiteeRenderer:
    STATE = {"open": ("open", "待办"), "progressing": ("progressing", "进行中"), "closed": ("closed", "已完成"),
             "rejected": ("rejected", "已拒绝")}

    def __init__(self, spec: RepoSpec):
        self.spec = spec
        self.repo = spec.repo
        self.rng = random.Random(f"{SEED}:{spec.key}:render")
        self.user_ids: dict[str, int] = {}
        self.label_ids: dict[str, int] = {}
        owner, name = spec.repo.split("/")
        self.repository = {
            "id": 20_000_000 + self.rng.randint(0, 999_999), "full_name": spec.repo, "human_name": f"{owner}/{name}",
            "url": f"{GITEE_API}/repos/{spec.repo}", "path": name, "name": name, "public": True, "fork": False,
            "html_url": f"https://gitee.com/{spec.repo}.git", "namespace": {"type": "group", "name": owner, "path": owner,
                                                                             "html_url": f"https://gitee.com/{owner}"},
        }

    def user(self, p: Person) -> dict:
        uid = self.user_ids.setdefault(p.login, 8_000_000 + len(self.user_ids) * 613 + self.rng.randint(0, 500))
        return {"id": uid, "login": p.login, "name": p.name, "avatar_url": "https://gitee.com/assets/no_portrait.png",
                "url": f"{GITEE_API}/users/{quote(p.login)}", "html_url": f"https://gitee.com/{quote(p.login)}", "remark": "",
                "type": "User"}

    def label(self, name: str) -> dict:
        lid = self.label_ids.setdefault(name, 180_000 + len(self.label_ids) * 37)
        return {"id": lid, "name": name, "color": LABEL_COLORS.get(name, "ededed"), "repository_id": self.repository["id"],
                "url": f"{GITEE_API}/repos/{self.repo}/labels/{quote(name)}",
                "created_at": "2024-09-01T10:00:00+08:00", "updated_at": "2024-09-01T10:00:00+08:00"}

    def gitee_state(self, d: IssueDraft) -> str:
        if d.state == "closed":
            return "rejected" if ("wontfix" in d.labels or "duplicate" in d.labels or self.rng.random() < 0.08) else "closed"
        return "progressing" if self.rng.random() < 0.2 else "open"

    def issue(self, d: IssueDraft) -> dict:
        api = f"{GITEE_API}/repos/{self.repo}/issues/{d.number}"
        state = self.gitee_state(d)
        out: dict[str, Any] = {
            "id": d.id, "url": api, "repository_url": f"{GITEE_API}/repos/{self.repo}", "labels_url": f"{api}/labels",
            "comments_url": f"{api}/comments", "html_url": f"https://gitee.com/{self.repo}/issues/{d.number}",
            "parent_url": None, "number": d.number, "parent_id": 0, "depth": 0,
            "state": "deleted" if d.malformed == "invalid_state" else state,
            "title": d.title, "body": d.body, "user": self.user(d.author), "labels": [self.label(n) for n in d.labels],
            "assignee": None, "collaborators": [], "repository": self.repository, "milestone": None,
            "created_at": _gitee_ts(d.created), "updated_at": _gitee_ts(d.updated), "plan_started_at": None,
            "deadline": None, "finished_at": _gitee_ts(d.closed), "scheduled_time": 0.0, "comments": len(d.comments),
            "priority": self.rng.choice([0, 0, 1, 2, 3]), "issue_type": GITEE_ISSUE_TYPE[d.kind or "bug"],
            "program": None, "security_hole": False, "issue_state": self.STATE[state][1], "branch": None,
        }
        if d.malformed == "missing_created_at":
            del out["created_at"]
        return out

    def comment(self, d: IssueDraft, c: CommentDraft) -> dict:
        return {"id": c.id, "body": c.body, "user": self.user(c.author), "source": None,
                "target": {"issue": {"id": d.id, "title": d.title, "number": d.number}, "pull_request": None},
                "created_at": _gitee_ts(c.created), "updated_at": _gitee_ts(c.updated)}


def _assign_ids(spec: RepoSpec, drafts: list[IssueDraft]) -> None:
    rng = random.Random(f"{SEED}:{spec.key}:ids")
    base_issue = 2_000_000_000 if spec.source == "github" else 9_000_000
    used_numbers: set[str] = set()
    next_id = base_issue
    for i, d in enumerate(drafts):
        next_id += rng.randint(1_000, 1_400)  # ids grow with creation time, with gaps (other repos' issues)
        d.id = next_id
        if spec.source == "github":
            d.number = str(i + 1)
        else:
            while True:  # Gitee issue "numbers" are 6-char identifiers like I8QK2Z
                num = "I" + rng.choice("123456789ABCDEF") + T.random_token(rng, "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ", 4)
                if num not in used_numbers:
                    used_numbers.add(num)
                    break
            d.number = num
    comments = sorted(((c.created, i, j) for i, d in enumerate(drafts) for j, c in enumerate(d.comments)))
    base_comment = 2_400_000_000 if spec.source == "github" else 30_000_000
    for k, (_, i, j) in enumerate(comments):
        drafts[i].comments[j].id = base_comment + k * 1000 + rng.randint(0, 900)


# ---------------------------------------------------------------------------------------------
# Top level.
# ---------------------------------------------------------------------------------------------


def generate(scale: float = 1.0, comments_factor: float = 1.0) -> tuple[dict[str, dict], dict]:
    """Build every repo's corpus dict (keyed by file name) and the manifest, in memory.

    `scale` multiplies issue counts, `comments_factor` comments per issue (both 1.0 for the shipped corpus).
    """
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    if comments_factor < 0:
        raise ValueError(f"comments_factor must be >= 0, got {comments_factor}")
    files: dict[str, dict] = {}
    manifest: dict[str, Any] = {"seed": SEED, "fixed_now": _gh_ts(FIXED_NOW), "scale": scale,
                                "kind_labels": {k: list(v) for k, v in KIND_LABELS.items()},
                                "bot_logins": list(BOT_LOGINS), "repos": {}}
    if comments_factor != 1.0:  # only then, so the shipped manifest stays byte-identical
        manifest["comments_factor"] = comments_factor
    built: dict[str, list[IssueDraft]] = {}
    earlier: list[tuple[str, IssueDraft]] = []
    for spec in REPO_SPECS:
        if spec.mirror_of:
            drafts = _mirror_drafts(spec, scale, built[spec.mirror_of], spec.mirror_of)
        else:
            drafts = RepoBuilder(spec, scale, comments_factor).build(earlier if spec.source == "github" else [])
        _assign_ids(spec, drafts)
        # Within-repo duplicates pointed at the Python object; resolve to issue keys now numbers exist.
        by_obj = {f"#{id(d)}": f"{spec.key}#{d.number}" for d in drafts}
        for d in drafts:
            if d.dup_of in by_obj:
                d.dup_of = by_obj[d.dup_of]
        _apply_malformed(spec, drafts)
        built[spec.key] = drafts
        if spec.source == "github":
            earlier += [(f"{spec.key}#{d.number}", d) for d in drafts if not d.is_pr and d.malformed is None and d.dup_of is None]
        renderer = GitHubRenderer(spec) if spec.source == "github" else GiteeRenderer(spec)
        issues = [renderer.issue(d) for d in drafts]
        comments = sorted(((c.id, renderer.comment(d, c)) for d in drafts for c in d.comments), key=lambda x: x[0])
        files[spec.filename] = {"source": spec.source, "repo": spec.repo, "issues": issues, "comments": [c for _, c in comments]}
        manifest["repos"][spec.key] = _repo_manifest(spec, drafts)
    return files, manifest


def _repo_manifest(spec: RepoSpec, drafts: list[IssueDraft]) -> dict:
    pii = []
    for d in drafts:
        for kind in d.pii:
            pii.append({"number": d.number, "where": "body", "kind": kind})
        for c in d.comments:
            if c.pii:
                pii.append({"number": d.number, "where": f"comment:{c.id}", "kind": c.pii})
    kinds: dict[str, int] = {}
    for d in drafts:
        if not d.is_pr:
            kinds[d.kind] = kinds.get(d.kind, 0) + 1  # type: ignore[index]
    return {
        "file": spec.filename,
        "issues": sum(not d.is_pr for d in drafts),
        "pull_requests": sum(d.is_pr for d in drafts),
        "comments": sum(len(d.comments) for d in drafts),
        "kinds": dict(sorted(kinds.items())),
        "malformed": [{"number": d.number, "kind": d.malformed, "normalise_reason": MALFORMED_REASONS[d.malformed]}
                      for d in drafts if d.malformed],
        "near_duplicates": [{"number": d.number, "of": d.dup_of} for d in drafts if d.dup_of],
        "planted_pii": pii,
    }


def write_corpus(out_dir: Path | str, scale: float = 1.0, comments_factor: float = 1.0) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files, manifest = generate(scale, comments_factor)
    written = []
    for name, data in files.items():
        path = out / name
        path.write_bytes(dump_json_gz(data))
        written.append(path)
    mpath = out / MANIFEST_NAME
    mpath.write_text(json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    written.append(mpath)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply issue counts (benchmarks); 1.0 = shipped corpus")
    parser.add_argument("--comments-factor", type=float, default=1.0, help="multiply comments per issue (benchmarks)")
    args = parser.parse_args(argv)
    for path in write_corpus(args.out, args.scale, args.comments_factor):
        print(f"{path}  {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
