"""The preprocessor: raw forge rows -> cleaned training issues, quarantined rows and filtered rows.

Every raw row ends up in exactly one of the three outputs, with a reason when it is not cleaned:
len(raw) == len(cleaned) + len(quarantined) + len(filtered). The steps, in order:

1. keep the latest version of each issue (older versions: filtered `superseded`);
2. normalise the payload (unusable: quarantined `malformed:<tag>`, `invalid_utf8`, `too_large`);
3. filter what cannot be a training example: `pull_request`, `bot_author`, `no_label`, `too_short`,
   and the conversation-shape filters below;
4. clean the text: auto-text stripped, Markdown normalised, bot comments and bot invocations dropped,
   PII/secrets redacted, users pseudonymised, long texts cut to head + tail; a language tag (`lang`);
5. near-duplicates across repos and forges: one survivor per cluster, the rest filtered `near_duplicate`.

Conversation-shape filters (after StarCoder's issue filtering, adapted to single-issue training rows):
  * `bot_dominated`: at least `min_bot_comments` comments and more than `max_bot_comment_share` of
    them by bots (dependency dashboards, CI failure trackers): the thread is a bot log;
  * `comment_flood`: one account wrote more than `max_comments_per_user` comments, or the thread has
    more than `max_comments` comments: flame wars, status spam and chat logs, not issue discussions.

Work is chunked: steps 2-4 run per chunk (optionally in a process pool), and what needs every row
(which version is latest, who is a known user, which issues are near-duplicates) is decided once at
the end from small per-row facts and the incremental MinHash index. There is one cleaning path:
`streaming.stream_clean` (what the clean asset runs) drives the per-chunk steps defined here and
makes the cross-row decisions; `clean_issues(raw)` is its one-frame convenience. (An in-memory
variant lives only in the tests, as an oracle the streaming path is compared with.)
"""

from __future__ import annotations

import tempfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa

from llama_platform.data.bots import is_bot, is_bot_invocation
from llama_platform.data.dedup import THRESHOLD, minhash_signatures
from llama_platform.data.lang import detect_language
from llama_platform.data.labels import canonical_labels
from llama_platform.data.redaction import mentioned_logins, pseudonymise, redact
from llama_platform.data.schemas import CleanedIssuesSchema
from llama_platform.data.text import clean_text, normalise_whitespace, truncate
from llama_platform.sources.records import RAW_COLUMNS, IssueRecord, MalformedRecord, normalise

COMMENT_SEPARATOR = "\n\n---\n\n"
KEY = ["source", "repo", "number"]

CLEANED_COLUMNS = [
    "issue_id", "source", "repo", "number", "title", "body", "comments_text", "n_comments", "labels",
    "label", "lang", "state", "author", "author_association", "created_at", "updated_at", "closed_at",
    "dup_cluster", "redactions", "raw_hash",
]  # fmt: skip
_TS_NS = pa.timestamp("ns", tz="UTC")
# The cleaned table's Arrow types: every part of a streamed cleaning is written with them, so parts
# agree even where one part's column happens to be all null; the snapshot's schema derives from it.
_CLEANED_TYPES = {
    "n_comments": pa.int64(), "labels": pa.list_(pa.string()), "redactions": pa.int64(),
    "created_at": _TS_NS, "updated_at": _TS_NS, "closed_at": _TS_NS,
}  # fmt: skip
CLEANED_ARROW_SCHEMA = pa.schema([(c, _CLEANED_TYPES.get(c, pa.string())) for c in CLEANED_COLUMNS])
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
    min_bot_comments: int = 3
    max_bot_comment_share: float = 0.8
    max_comments_per_user: int = 30
    max_comments: int = 200


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


def _key(row: dict) -> tuple[str, str, str]:
    return tuple(str(row[k]) for k in KEY)  # type: ignore[return-value]


def _keyless(row: dict) -> bool:
    number = row["number"]
    return number is None or pd.isna(number) or str(number) == "" or pd.isna(row["updated_at"])


def _payload_size(payload: Any) -> int:
    return len(payload) if isinstance(payload, (str, bytes)) else 0


def _conversation_shape(rec: IssueRecord, config: CleaningConfig) -> str | None:
    """The conversation-shape filter an issue fails (see the module docstring), or None."""
    n = len(rec.comments)
    if n > config.max_comments:
        return "comment_flood"
    bots = sum(1 for c in rec.comments if is_bot(c.author, c.author_type))
    if bots >= config.min_bot_comments and bots > config.max_bot_comment_share * n:
        return "bot_dominated"
    per_user = Counter(c.author.lower() for c in rec.comments if c.author and not is_bot(c.author, c.author_type))
    if per_user and max(per_user.values()) > config.max_comments_per_user:
        return "comment_flood"
    return None


@dataclass
class _ChunkResult:
    outcomes: list[dict]  # one per raw row: its version facts and where it went
    cand_rows: list[int]  # global row indices of the candidates, in signature order
    signatures: np.ndarray
    usable: np.ndarray
    mentions: set[str] = field(default_factory=set)  # lower-cased logins @mentioned by the candidates


def _rows(chunk: Any) -> list[dict]:
    # An Arrow batch pickles as a few buffers: cheaper to hand to a worker than a DataFrame.
    return chunk.to_pylist() if isinstance(chunk, (pa.RecordBatch, pa.Table)) else chunk.to_dict("records")


def _process_chunk(chunk: Any, start: int, config: CleaningConfig) -> _ChunkResult:
    """Steps 2-4 for one chunk of raw rows (numbered from `start`); no cross-row decisions here."""
    outcomes: list[dict] = []
    cand_rows: list[int] = []
    dedup_texts: list[str] = []
    for offset, row in enumerate(_rows(chunk)):
        out: dict[str, Any] = {
            "i": start + offset,
            "key": _key(row),
            "issue_id": _issue_id(*(row[k] for k in KEY)),
            "updated_at": row["updated_at"],
            "size": _payload_size(row["payload"]),
            "sha": row["payload_sha256"],
            "logins": (),
        }
        outcomes.append(out)
        try:
            rec = _parse(row, config)
        except _Rejected as rej:
            if _keyless(row):
                # No number or updated_at: no version to compare, so a key of its own. It is never
                # `superseded` by (or collapsed with) another keyless row; it is quarantined for what it lacks.
                out["key"] = (*out["key"][:2], f"{out['key'][2]}\x00row {out['i']}")
            out.update(
                kind="quarantined",
                quarantine={
                    "issue_id": out["issue_id"],
                    **{k: None if pd.isna(row[k]) else str(row[k]) for k in KEY},
                    "reason": rej.reason,
                    "detail": rej.detail,
                    "payload_sha256": row["payload_sha256"],
                },
            )
            continue
        out["issue_id"] = rec.issue_id
        out["logins"] = tuple({rec.author, *(c.author for c in rec.comments)} - {None, ""})
        reason = _filter_reason(rec, config)
        if reason:
            out.update(kind="filtered", reason=reason)
            continue
        cand = _candidate(rec, config)
        if cand is None:
            out.update(kind="filtered", reason="too_short")
            continue
        out.update(kind="candidate", cand=cand)
        cand_rows.append(out["i"])
        dedup_texts.append(cand["title"] + "\n" + cand["body"])
    signatures, usable = minhash_signatures(dedup_texts)
    cands = [o["cand"] for o in outcomes if o["kind"] == "candidate"]
    mentions = mentioned_logins(text for c in cands for text in (c["title"], c["body"], *c["comments"]))
    return _ChunkResult(outcomes, cand_rows, signatures, usable, mentions)


def _filter_reason(rec: IssueRecord, config: CleaningConfig) -> str | None:
    if rec.is_pull_request:
        return "pull_request"
    if is_bot(rec.author, rec.author_association):
        return "bot_author"
    if not canonical_labels(rec.labels):
        return "no_label"
    return _conversation_shape(rec, config)


def _candidate(rec: IssueRecord, config: CleaningConfig) -> dict | None:
    """Cleaned, redacted text and fields of an issue (None: too short). Mentions and truncation come later."""
    title = " ".join(normalise_whitespace(rec.title).split())
    body = clean_text(rec.body)
    if len(title) + len(body) < config.min_chars:
        return None
    comment_counts: Counter = Counter()
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
    redaction_counts: Counter = Counter()

    def scrub(text: str) -> str:
        text, found = redact(text)
        redaction_counts.update(found)
        return text

    title, body = scrub(title), scrub(body)
    labels = canonical_labels(rec.labels)
    return {
        "issue_id": rec.issue_id,
        "source": rec.source,
        "repo": rec.repo,
        "number": rec.number,
        "title": title,
        "body": body,
        "comments": [scrub(c) for c in comments],
        "labels": labels,
        "label": labels[0],
        "lang": detect_language(title + "\n\n" + body),
        "state": rec.state,
        "author": pseudonymise(rec.author, config.salt),
        "author_association": rec.author_association,
        "created_at": rec.created_at,
        "updated_at": rec.updated_at,
        "closed_at": rec.closed_at,
        "redaction_counts": dict(redaction_counts),
        "comment_counts": dict(comment_counts),
        "raw_hash": rec.raw_hash,
    }


def _chunks(raw: pd.DataFrame, size: int) -> Iterator[pd.DataFrame]:
    for start in range(0, len(raw), size):
        yield raw.iloc[start : start + size]


def _check_columns(df: Any) -> None:
    names = df.schema.names if isinstance(df, (pa.RecordBatch, pa.Table)) else df.columns
    missing = [c for c in RAW_COLUMNS if c not in names]
    if missing:
        raise ValueError(f"raw frame lacks columns {missing}")


def clean_issues(raw: pd.DataFrame, config: CleaningConfig = CleaningConfig(), workers: int = 1) -> CleanResult:
    """Clean a raw issues frame (RAW_COLUMNS) in one call, for tests and small inputs: the one cleaning
    path (`streaming.stream_clean`, which the clean asset runs) in a scratch folder, its cleaned rows
    gathered into one frame sorted by issue_id."""
    # Imported here: streaming builds on this module's steps, so it cannot be imported at its top.
    from llama_platform.data.streaming import stream_clean

    _check_columns(raw)
    with tempfile.TemporaryDirectory(prefix="clean-issues-") as spill:
        res = stream_clean(_chunks(raw.reset_index(drop=True), 2_000), Path(spill), config, workers=workers)
        cleaned = res.cleaned_frame().drop(columns="split")
    return CleanResult(CleanedIssuesSchema.validate(cleaned), res.quarantined, res.filtered, res.counts)


def run_chunks(
    chunks: Iterable[pd.DataFrame | pa.RecordBatch],
    config: CleaningConfig,
    workers: int,
    collect: Callable[[_ChunkResult], None],
    pool: ProcessPoolExecutor | None = None,
) -> None:
    """Process raw chunks (in a pool of `workers` processes when > 1, or in `pool`) and hand each
    result to `collect`, in input order; at most 2 x workers chunks are in flight, so memory stays flat."""

    def numbered() -> Iterator[tuple[pd.DataFrame, int]]:
        start = 0
        for chunk in chunks:
            _check_columns(chunk)
            yield chunk, start
            start += len(chunk)

    if pool is None and workers > 1:
        with worker_pool(workers) as own:
            return run_chunks(chunks, config, workers, collect, own)
    for res in in_order(pool, workers, partial(_process_numbered, config=config), numbered()):
        collect(res)


def _process_numbered(item: tuple[Any, int], config: CleaningConfig) -> _ChunkResult:
    return _process_chunk(*item, config)


def in_order(pool: ProcessPoolExecutor | None, workers: int, fn: Callable, items: Iterable) -> Iterator:
    """fn(item) for each item, in order: in `pool` with at most 2 x workers in flight (so memory
    stays flat), or here when there is no pool."""
    if pool is None:
        yield from map(fn, items)
        return
    pending = []
    for item in items:
        pending.append(pool.submit(fn, item))
        while len(pending) > 2 * workers:
            yield pending.pop(0).result()
    for fut in pending:
        yield fut.result()


@contextmanager
def worker_pool(workers: int) -> Iterator[ProcessPoolExecutor | None]:
    """A pool of `workers` cleaning processes (None for 1: work in this process). Models are loaded
    before it forks, so the workers share them instead of each loading its own."""
    if workers <= 1:
        yield None
        return
    _load_models()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield pool


def final_row(
    cand: dict, cluster: str, redactions: int, replace_mentions: Callable[[str], str], config: CleaningConfig
) -> dict:
    """A candidate's cleaned row once the cross-row decisions are made: known users' @mentions
    pseudonymised, long texts cut to head + tail, comments joined."""
    comments = [truncate(replace_mentions(c), config.max_comment_chars) for c in cand["comments"]]
    return {
        **{k: cand[k] for k in CLEANED_COLUMNS if k in cand},
        "title": replace_mentions(cand["title"]),
        "body": truncate(replace_mentions(cand["body"]), config.max_body_chars),
        "comments_text": COMMENT_SEPARATOR.join(comments),
        "n_comments": len(comments),
        "redactions": redactions,
        "dup_cluster": cluster,
    }


def cleaned_rows_frame(rows: list[dict]) -> pd.DataFrame:
    """`final_row`s as the typed frame CleanedIssuesSchema describes (the caller validates it)."""
    df = _frame(rows, CLEANED_COLUMNS)
    for col in _TIMESTAMPS:
        df[col] = pd.to_datetime(df[col], utc=True).astype("datetime64[ns, UTC]")
    return df.astype({"n_comments": "int64", "redactions": "int64"})


def _load_models() -> None:
    detect_language("Ce texte charge les modèles de langue une fois pour toutes.")
    redact("and this one the redaction prefilter")
