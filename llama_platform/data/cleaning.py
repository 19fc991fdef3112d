"""The preprocessor: raw forge rows -> cleaned training issues, quarantined rows and filtered rows.

Every raw row ends up in exactly one of the three outputs, with a reason when it is not cleaned:
len(raw) == len(cleaned) + len(quarantined) + len(filtered). The steps, in order:

1. keep the latest version of each issue (older versions: filtered `superseded`);
2. normalise the payload (unusable: quarantined `malformed:<tag>`, `invalid_utf8`, `too_large`);
3. filter what cannot be a training example: `pull_request`, `bot_author`, `no_label`, `too_short`;
4. clean the text: auto-text stripped, bot comments dropped, PII/secrets redacted, users pseudonymised;
5. near-duplicates across repos and forges: one survivor per cluster, the rest filtered `near_duplicate`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from llama_platform.data.bots import is_bot, is_bot_invocation
from llama_platform.data.dedup import THRESHOLD, near_duplicate_clusters, survivors
from llama_platform.data.labels import canonical_labels
from llama_platform.data.redaction import mention_replacer, pseudonymise, redact
from llama_platform.data.schemas import CleanedIssuesSchema, FilteredIssuesSchema, QuarantinedIssuesSchema
from llama_platform.data.text import clean_text, normalise_whitespace, truncate
from llama_platform.sources.records import RAW_COLUMNS, IssueRecord, MalformedRecord, normalise

COMMENT_SEPARATOR = "\n\n---\n\n"
KEY = ["source", "repo", "number"]

CLEANED_COLUMNS = [
    "issue_id", "source", "repo", "number", "title", "body", "comments_text", "n_comments", "labels",
    "label", "state", "author", "author_association", "created_at", "updated_at", "closed_at",
    "dup_cluster", "redactions", "raw_hash",
]  # fmt: skip
QUARANTINED_COLUMNS = ["issue_id", "source", "repo", "number", "reason", "detail", "payload_sha256"]
FILTERED_COLUMNS = ["issue_id", "source", "repo", "number", "reason"]
_TIMESTAMPS = ["created_at", "updated_at", "closed_at"]


@dataclass(frozen=True)
class CleaningConfig:
    min_chars: int = 20  # title + body after cleaning; shorter says nothing a model can learn from
    max_body_bytes: int = 64 * 1024  # larger bodies are log dumps or abuse: quarantined, not truncated
    max_body_chars: int = 16_000
    max_comment_chars: int = 4_000
    dedup_threshold: float = THRESHOLD
    salt: str = ""  # pseudonymisation salt (pass a secret one in production)


@dataclass
class CleanResult:
    cleaned: pd.DataFrame
    quarantined: pd.DataFrame
    filtered: pd.DataFrame
    counts: dict[str, Any] = field(default_factory=dict)


def _issue_id(source: Any, repo: Any, number: Any) -> str:
    return f"{source}:{repo}#{number}"


def _encodable(*texts: str) -> bool:
    try:
        for t in texts:
            t.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, e.g. from a "\ud800" escape in the JSON
        return False
    return True


class _Rejected(Exception):
    def __init__(self, reason: str, detail: str = ""):
        self.reason, self.detail = reason, detail


def _parse(row: dict, config: CleaningConfig) -> IssueRecord:
    payload = row["payload"]
    if isinstance(payload, bytes):
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Rejected("invalid_utf8", f"payload bytes at {exc.start}") from exc
    if not isinstance(payload, str):
        raise _Rejected("malformed:missing_field", f"payload is {type(payload).__name__}")
    if not _encodable(payload):
        raise _Rejected("invalid_utf8", "payload contains unpaired surrogates")
    try:
        rec = normalise(row["source"], row["repo"], payload, raw_hash=row["payload_sha256"])
    except MalformedRecord as exc:
        raise _Rejected(f"malformed:{exc.reason}", exc.detail) from exc
    except (TypeError, AttributeError, KeyError, ValueError) as exc:
        # Shapes normalise() does not anticipate (e.g. a list where an object belongs).
        raise _Rejected("malformed:unexpected", f"{type(exc).__name__}: {str(exc)[:200]}") from exc
    if rec.number != str(row["number"]):
        raise _Rejected("malformed:key_mismatch", f"row number {row['number']!r} != payload number {rec.number!r}")
    if not _encodable(rec.title, rec.body, *(c.body for c in rec.comments)):
        raise _Rejected("invalid_utf8", "text contains unpaired surrogates")
    size = len(rec.body.encode("utf-8"))
    if size > config.max_body_bytes:
        raise _Rejected("too_large", f"body is {size} bytes (limit {config.max_body_bytes})")
    return rec


def _frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns).reset_index(drop=True)


def clean_issues(raw: pd.DataFrame, config: CleaningConfig = CleaningConfig()) -> CleanResult:
    """Clean a raw issues frame (RAW_COLUMNS); see the module docstring for the steps."""
    missing = [c for c in RAW_COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"raw frame lacks columns {missing}")
    raw = raw.reset_index(drop=True)
    quarantined: list[dict] = []
    filtered: list[dict] = []

    def filter_row(row: dict, reason: str) -> None:
        filtered.append({**{k: str(row[k]) for k in KEY}, "issue_id": _issue_id(*(row[k] for k in KEY)), "reason": reason})

    # 1. Latest version wins; equal timestamps prefer the bigger payload (more comments), then the hash.
    order = raw.assign(_size=raw["payload"].map(lambda p: len(p) if isinstance(p, (str, bytes)) else 0))
    order = order.sort_values(["updated_at", "_size", "payload_sha256"], na_position="first", kind="stable")
    superseded = order.duplicated(subset=KEY, keep="last")
    for row in order[superseded].to_dict("records"):
        filter_row(row, "superseded")

    # 2. Normalise; anything unusable is quarantined with its reason.
    records: list[IssueRecord] = []
    rows_by_id: dict[str, dict] = {}
    for row in order[~superseded].drop(columns="_size").to_dict("records"):
        try:
            rec = _parse(row, config)
        except _Rejected as rej:
            quarantined.append(
                {
                    "issue_id": _issue_id(*(row[k] for k in KEY)),
                    **{k: None if pd.isna(row[k]) else str(row[k]) for k in KEY},
                    "reason": rej.reason,
                    "detail": rej.detail,
                    "payload_sha256": row["payload_sha256"],
                }
            )
            continue
        records.append(rec)
        rows_by_id[rec.issue_id] = row

    # Every login seen anywhere, so an @mention of a user is pseudonymised even in another issue.
    logins = {r.author for r in records if r.author} | {c.author for r in records for c in r.comments if c.author}
    replace_mentions = mention_replacer(logins, config.salt)

    # 3 + 4. Filter, then clean the text of what is left.
    comment_counts: Counter = Counter()
    redaction_counts: Counter = Counter()
    candidates: list[dict] = []
    for rec in records:
        row = rows_by_id[rec.issue_id]
        labels = canonical_labels(rec.labels)
        if rec.is_pull_request:
            filter_row(row, "pull_request")
            continue
        if is_bot(rec.author, rec.author_association):
            filter_row(row, "bot_author")
            continue
        if not labels:
            filter_row(row, "no_label")
            continue
        title = " ".join(normalise_whitespace(rec.title).split())
        body = clean_text(rec.body)
        if len(title) + len(body) < config.min_chars:
            filter_row(row, "too_short")
            continue

        comments = []
        for c in rec.comments:
            if is_bot(c.author, c.author_type):
                comment_counts["bot"] += 1
            elif is_bot_invocation(c.body):
                comment_counts["bot_invocation"] += 1
            elif not (text := clean_text(c.body)):
                comment_counts["empty_after_cleaning"] += 1
            else:
                comment_counts["kept"] += 1
                comments.append(text)

        n_redacted = 0

        def scrub(text: str, limit: int | None) -> str:
            nonlocal n_redacted
            text, found = redact(text)
            redaction_counts.update(found)
            n_redacted += sum(found.values())
            text = replace_mentions(text)
            return truncate(text, limit) if limit else text

        title = scrub(title, None)
        body = scrub(body, config.max_body_chars)
        comments = [scrub(c, config.max_comment_chars) for c in comments]
        candidates.append(
            {
                "issue_id": rec.issue_id,
                "source": rec.source,
                "repo": rec.repo,
                "number": rec.number,
                "title": title,
                "body": body,
                "comments_text": COMMENT_SEPARATOR.join(comments),
                "n_comments": len(comments),
                "labels": labels,
                "label": labels[0],
                "state": rec.state,
                "author": pseudonymise(rec.author, config.salt),
                "author_association": rec.author_association,
                "created_at": rec.created_at,
                "updated_at": rec.updated_at,
                "closed_at": rec.closed_at,
                "redactions": n_redacted,
                "raw_hash": rec.raw_hash,
            }
        )

    # 5. Near-duplicates (on the cleaned title + body): the earliest report survives.
    ids = [c["issue_id"] for c in candidates]
    clusters = near_duplicate_clusters(
        ids, [c["title"] + "\n" + c["body"] for c in candidates], threshold=config.dedup_threshold
    )
    keep = survivors(ids, [c["created_at"] for c in candidates], clusters)
    cleaned_rows = []
    for cand in candidates:
        if cand["issue_id"] in keep:
            cleaned_rows.append({**cand, "dup_cluster": clusters[cand["issue_id"]]})
        else:
            filter_row(rows_by_id[cand["issue_id"]], "near_duplicate")

    cleaned = _frame(cleaned_rows, CLEANED_COLUMNS)
    for col in _TIMESTAMPS:
        cleaned[col] = pd.to_datetime(cleaned[col], utc=True).astype("datetime64[ns, UTC]")
    cleaned = cleaned.astype({"n_comments": "int64", "redactions": "int64"})
    cleaned = cleaned.sort_values("issue_id", kind="stable").reset_index(drop=True)
    result = CleanResult(
        cleaned=CleanedIssuesSchema.validate(cleaned),
        quarantined=QuarantinedIssuesSchema.validate(_frame(quarantined, QUARANTINED_COLUMNS)),
        filtered=FilteredIssuesSchema.validate(_frame(filtered, FILTERED_COLUMNS)),
    )
    result.counts = {
        "raw": len(raw),
        "cleaned": len(result.cleaned),
        "quarantined": dict(Counter(result.quarantined["reason"])),
        "filtered": dict(Counter(result.filtered["reason"])),
        "comments": dict(comment_counts),
        "redactions": dict(redaction_counts),
    }
    n_out = len(result.cleaned) + len(result.quarantined) + len(result.filtered)
    if n_out != len(raw):  # a bug here would silently lose or invent rows: fail loudly instead
        raise AssertionError(f"reconciliation failed: {len(raw)} raw rows, {n_out} accounted for")
    return result
