"""The in-memory cleaning, kept only as a test oracle for the one production path (`streaming.stream_clean`).

It runs the same per-chunk steps (`data.cleaning`) but takes the cross-row decisions (latest version,
known users, near-duplicates) over Python objects held in memory, written independently of the
streaming path's Arrow/spill machinery: two implementations of the same decisions, compared by the
tests (test_streaming, test_cleaning). Not for production: it holds every candidate's text in memory.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable, Iterable

import pandas as pd
import pyarrow as pa

from llama_platform.data.cleaning import (
    FILTERED_COLUMNS,
    KEY,
    QUARANTINED_COLUMNS,
    CleaningConfig,
    CleanResult,
    _check_columns,
    _chunks,
    _ChunkResult,
    _frame,
    cleaned_rows_frame,
    final_row,
    run_chunks,
)
from llama_platform.data.dedup import MinHashIndex, survivors
from llama_platform.data.redaction import mention_replacer
from llama_platform.data.schemas import CleanedIssuesSchema, FilteredIssuesSchema, QuarantinedIssuesSchema


def oracle_clean(raw: pd.DataFrame, config: CleaningConfig = CleaningConfig(), workers: int = 1) -> CleanResult:
    """What `clean_issues` must return, decided in memory."""
    _check_columns(raw)
    return clean_chunks(_chunks(raw.reset_index(drop=True), 2_000), config, workers=workers)


def clean_chunks(
    chunks: Iterable[pd.DataFrame | pa.RecordBatch],
    config: CleaningConfig = CleaningConfig(),
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> CleanResult:
    """Clean a stream of raw chunks (each a RAW_COLUMNS frame or Arrow batch) as if they were one frame.

    Raw payloads are dropped as soon as their chunk is processed; what is kept until the end is the
    cleaned text of the candidates, their MinHash signatures and a few facts per raw row. With
    `workers` > 1 chunks are processed in a pool of that many processes. `progress(n_rows)` is
    called after each chunk.
    """
    results: list[_ChunkResult] = []
    index = MinHashIndex(threshold=config.dedup_threshold)

    def collect(res: _ChunkResult) -> None:
        results.append(res)
        index.add(res.cand_rows, res.signatures, res.usable)  # the index grows chunk by chunk
        if progress:
            progress(len(res.outcomes))

    run_chunks(chunks, config, workers, collect)
    return _finish(results, index, config)




def _finish(results: list[_ChunkResult], index: MinHashIndex, config: CleaningConfig) -> CleanResult:
    outcomes = [o for res in results for o in res.outcomes]
    n_raw = len(outcomes)
    quarantined: list[dict] = []
    filtered: list[dict] = []

    def filter_out(o: dict, reason: str) -> None:
        filtered.append({"issue_id": o["issue_id"], **dict(zip(KEY, o["key"])), "reason": reason})

    # 1. Latest version wins; equal timestamps prefer the bigger payload (more comments), then the hash.
    versions = pd.DataFrame(
        {
            "key": [o["key"] for o in outcomes],
            "updated_at": pd.to_datetime(pd.Series([o["updated_at"] for o in outcomes], dtype=object), utc=True),
            "size": [o["size"] for o in outcomes],
            "sha": [o["sha"] for o in outcomes],
        }
    )
    order = versions.sort_values(["updated_at", "size", "sha"], na_position="first", kind="stable")
    losers = set(order.index[order.duplicated(subset="key", keep="last")])

    candidates: dict[int, dict] = {}
    logins: set[str] = set()
    comment_counts: Counter = Counter()
    redaction_counts: Counter = Counter()
    for o in outcomes:
        if o["i"] in losers:
            filter_out(o, "superseded")
            continue
        logins.update(o["logins"])
        if o["kind"] == "quarantined":
            quarantined.append(o["quarantine"])
        elif o["kind"] == "filtered":
            filter_out(o, o["reason"])
        else:
            candidates[o["i"]] = o
            comment_counts.update(o["cand"]["comment_counts"])
            redaction_counts.update(o["cand"]["redaction_counts"])

    # 5. Near-duplicates among the latest versions: the earliest report survives.
    cand_ids = {i: o["cand"]["issue_id"] for i, o in candidates.items()}
    clusters = index.clusters(list(cand_ids.values()), id_of=cand_ids)
    ids = list(cand_ids.values())
    keep = survivors(ids, [candidates[i]["cand"]["created_at"] for i in cand_ids], clusters)
    replace_mentions = mention_replacer(logins, config.salt)

    cleaned_rows = []
    for i, o in candidates.items():
        cand = o.pop("cand")  # its texts are freed as soon as the cleaned row holds their final form
        if cand["issue_id"] not in keep:
            filter_out(o, "near_duplicate")
            continue
        redactions = sum(cand["redaction_counts"].values())
        cleaned_rows.append(final_row(cand, clusters[cand["issue_id"]], redactions, replace_mentions, config))

    cleaned = cleaned_rows_frame(cleaned_rows)
    del cleaned_rows, candidates
    cleaned = cleaned.sort_values("issue_id", kind="stable").reset_index(drop=True)
    result = CleanResult(
        cleaned=CleanedIssuesSchema.validate(cleaned),
        quarantined=QuarantinedIssuesSchema.validate(_frame(quarantined, QUARANTINED_COLUMNS)),
        filtered=FilteredIssuesSchema.validate(_frame(filtered, FILTERED_COLUMNS)),
    )
    result.counts = {
        "raw": n_raw,
        "cleaned": len(result.cleaned),
        "quarantined": dict(Counter(result.quarantined["reason"])),
        "filtered": dict(Counter(result.filtered["reason"])),
        "comments": dict(comment_counts),
        "redactions": dict(redaction_counts),
        "languages": dict(Counter(result.cleaned["lang"])),
    }
    n_out = len(result.cleaned) + len(result.quarantined) + len(result.filtered)
    if n_out != n_raw:  # a bug here would silently lose or invent rows: fail loudly instead
        raise AssertionError(f"reconciliation failed: {n_raw} raw rows, {n_out} accounted for")
    return result
