"""The cleaning path (the one the clean asset runs): candidate rows are spilled to Parquet as chunks finish.

Which version of an issue is the latest, who is a known user (for @mention pseudonymisation) and
which issues are near-duplicates can only be decided once every row has been seen; holding every
candidate's cleaned text until then would cost ~13 MiB per 1,000 issues. `stream_clean` makes those
decisions from small per-row facts (the per-chunk steps are `cleaning`'s) and keeps only
the facts in memory (keys, timestamps, sizes, hashes and logins as compact Arrow columns, plus the
MinHash signatures in the shared `MinHashIndex`); each chunk's candidate rows go to a Parquet file
in `spill_dir` as soon as the chunk is processed. A second pass reads the spill back, applies the
decisions (superseded, near_duplicate, mentions, truncation) and writes the final cleaned rows to
Parquet parts (`CLEANED_ARROW_SCHEMA`) that `StreamResult.iter_cleaned()` streams with their split,
e.g. into `snapshot.write_snapshot_streaming`.

The tests compare it with an independent in-memory oracle (llama_platform_tests/data/oracle.py):
same cleaned rows (in raw order here, not sorted by issue_id), quarantined and filtered rows with
their reasons, and the same counts; reconciliation is checked on every run.
"""

from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from llama_platform.data.cleaning import (
    CLEANED_ARROW_SCHEMA,
    CLEANED_COLUMNS,
    FILTERED_COLUMNS,
    KEY,
    QUARANTINED_COLUMNS,
    CleaningConfig,
    _ChunkResult,
    _frame,
    cleaned_rows_frame,
    final_row,
    in_order,
    run_chunks,
    worker_pool,
)
from llama_platform.data.dedup import MinHashIndex, survivors
from llama_platform.data.redaction import mention_replacer
from llama_platform.data.schemas import CleanedIssuesSchema, FilteredIssuesSchema, QuarantinedIssuesSchema
from llama_platform.data.splits import assign_splits

_TS = pa.timestamp("us", tz="UTC")
_STR_LIST = pa.list_(pa.string())
# What stays in memory per raw row (Arrow columns: a few dozen bytes plus the strings).
_FACTS_SCHEMA = pa.schema(
    [
        ("i", pa.int64()),
        ("key", pa.string()),
        ("issue_id", pa.string()),
        ("updated_at", pa.timestamp("ns", tz="UTC")),
        ("size", pa.int64()),
        ("sha", pa.string()),
        ("logins", _STR_LIST),
        ("kind", pa.string()),
        ("reason", pa.string()),
        ("created_at", _TS),  # candidates only: the near-duplicate survivor is the earliest
    ]
)
# A candidate's cleaned (not yet final) row, spilled to disk.
_SPILL_SCHEMA = pa.schema(
    [
        ("i", pa.int64()),
        ("issue_id", pa.string()),
        ("source", pa.string()),
        ("repo", pa.string()),
        ("number", pa.string()),
        ("title", pa.string()),
        ("body", pa.string()),
        ("comments", _STR_LIST),
        ("labels", _STR_LIST),
        ("label", pa.string()),
        ("lang", pa.string()),
        ("state", pa.string()),
        ("author", pa.string()),
        ("author_association", pa.string()),
        ("created_at", _TS),
        ("updated_at", _TS),
        ("closed_at", _TS),
        ("raw_hash", pa.string()),
        ("redaction_counts", pa.string()),  # JSON: only non-superseded rows count, decided later
        ("comment_counts", pa.string()),
    ]
)
_KEY_SEP = "\x1f"  # joins source/repo/number into one comparable string (never inside a key part)


def cleaned_frame(table: pa.Table | pa.RecordBatch) -> pd.DataFrame:
    """A cleaned table read back from Parquet, as the pandas frame CleanedIssuesSchema describes."""
    df = table.to_pandas()
    df["labels"] = df["labels"].map(list)
    for col in ("created_at", "updated_at", "closed_at"):
        df[col] = pd.to_datetime(df[col], utc=True).astype("datetime64[ns, UTC]")
    return df


def with_splits(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with its `split` column: a pure function of each row's duplicate cluster."""
    return df.assign(split=assign_splits(df["dup_cluster"]).values)


@dataclass
class StreamResult:
    """What `stream_clean` produced: cleaned rows on disk, the (small) other outputs in memory."""

    cleaned_parts: list[Path]
    quarantined: pd.DataFrame
    filtered: pd.DataFrame
    counts: dict[str, Any] = field(default_factory=dict)

    def iter_cleaned(self) -> Iterator[pd.DataFrame]:
        """The cleaned rows with their `split`, one frame per part (CleanedIssuesSchema + split)."""
        for path in self.cleaned_parts:
            yield with_splits(cleaned_frame(pq.read_table(path)))

    def cleaned_frame(self) -> pd.DataFrame:
        """All cleaned rows in one frame, sorted by issue_id (small inputs only)."""
        parts = list(self.iter_cleaned())
        if not parts:
            return pd.DataFrame(columns=CLEANED_COLUMNS + ["split"])
        df = pd.concat(parts, ignore_index=True)
        return df.sort_values("issue_id", kind="stable").reset_index(drop=True)


def _facts(res: _ChunkResult) -> pa.Table:
    cols: dict[str, list] = {name: [] for name in _FACTS_SCHEMA.names}
    for o in res.outcomes:
        cols["i"].append(o["i"])
        cols["key"].append(_KEY_SEP.join(o["key"]))
        cols["issue_id"].append(o["issue_id"])
        cols["updated_at"].append(o["updated_at"])
        cols["size"].append(o["size"])
        cols["sha"].append(o["sha"])
        cols["logins"].append(list(o["logins"]))
        cols["kind"].append(o["kind"])
        cols["reason"].append(o.get("reason"))
        cols["created_at"].append(o["cand"]["created_at"] if o["kind"] == "candidate" else None)
    # Whatever the raw column held, parsed as UTC (NaT for nulls).
    updated = pd.to_datetime(pd.Series(cols["updated_at"], dtype=object), utc=True).astype("datetime64[ns, UTC]")
    cols["updated_at"] = pa.array(updated, type=_FACTS_SCHEMA.field("updated_at").type)
    cols["sha"] = [None if s is None or (isinstance(s, float) and np.isnan(s)) else str(s) for s in cols["sha"]]
    return pa.table(cols, schema=_FACTS_SCHEMA)


def _spill(res: _ChunkResult, path: Path) -> None:
    rows = []
    for o in res.outcomes:
        if o["kind"] != "candidate":
            continue
        cand = o.pop("cand")  # the text leaves memory once it is on disk
        rows.append(
            {
                **{k: cand[k] for k in _SPILL_SCHEMA.names if k in cand},
                "i": o["i"],
                "redaction_counts": json.dumps(cand["redaction_counts"]),
                "comment_counts": json.dumps(cand["comment_counts"]),
            }
        )
    pq.write_table(pa.Table.from_pylist(rows, schema=_SPILL_SCHEMA), path)


def stream_clean(
    chunks: Iterable[pd.DataFrame | pa.RecordBatch],
    spill_dir: Path,
    config: CleaningConfig = CleaningConfig(),
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
    part_rows: int = 5_000,
) -> StreamResult:
    """Clean a stream of raw chunks (RAW_COLUMNS frames or Arrow batches), holding only per-row facts in memory.

    `spill_dir` (created if missing) receives the spilled candidates and the cleaned parts; it must
    outlive the result, whose `iter_cleaned()` reads the parts. `part_rows` bounds a cleaned part.
    """
    spill_dir = Path(spill_dir)
    (spill_dir / "candidates").mkdir(parents=True, exist_ok=True)
    (spill_dir / "cleaned").mkdir(parents=True, exist_ok=True)
    facts: list[pa.Table] = []
    spills: list[_Spill] = []
    quarantine: dict[int, dict] = {}
    # Signatures (1 KiB per candidate) wait on disk too; only band hashes stay in memory.
    index = MinHashIndex(threshold=config.dedup_threshold, spill_path=spill_dir / "signatures.u32")

    def collect(res: _ChunkResult) -> None:
        index.add(res.cand_rows, res.signatures, res.usable)
        quarantine.update({o["i"]: o["quarantine"] for o in res.outcomes if o["kind"] == "quarantined"})
        facts.append(_facts(res))
        path = spill_dir / "candidates" / f"part-{len(spills):06d}.parquet"
        _spill(res, path)
        spills.append(_Spill(path, np.array(res.cand_rows, dtype=np.int64), frozenset(res.mentions)))
        if progress:
            progress(len(res.outcomes))

    # One pool for both passes, forked before the per-row facts pile up in this process.
    with worker_pool(workers) as pool:
        run_chunks(chunks, config, workers, collect, pool)
        return _finish(facts, spills, quarantine, index, spill_dir / "cleaned", config, part_rows, pool, workers)


@dataclass(frozen=True)
class _Spill:
    path: Path
    rows: np.ndarray  # the global row numbers of its candidates
    mentions: frozenset[str]  # lower-cased logins its texts @mention


@dataclass(frozen=True)
class _PartTask:
    """Second pass over one spill: what was decided about its candidates, and where to write."""

    spill: Path
    out_prefix: Path
    decisions: dict[int, tuple[str, bool]]  # live candidate row -> (duplicate cluster, survives)
    known_mentions: frozenset[str]  # the @mentioned logins that belong to people in the data
    config: CleaningConfig
    part_rows: int


@dataclass
class _PartResult:
    parts: list[Path]
    n_cleaned: int
    near_duplicates: list[dict]
    comment_counts: Counter
    redaction_counts: Counter
    languages: Counter


def _final_part(task: _PartTask) -> _PartResult:
    """Apply the decisions to one spill's candidates and write its cleaned rows (a worker's job)."""
    config = task.config
    replace_mentions = mention_replacer(task.known_mentions, config.salt)
    out = _PartResult([], 0, [], Counter(), Counter(), Counter())
    rows = []
    for cand in pq.read_table(task.spill).to_pylist():
        decision = task.decisions.get(cand["i"])
        if decision is None:
            continue  # superseded: already counted as filtered
        cluster, survives = decision
        out.comment_counts.update(json.loads(cand["comment_counts"]))
        redaction = json.loads(cand["redaction_counts"])
        out.redaction_counts.update(redaction)
        if not survives:
            out.near_duplicates.append({"issue_id": cand["issue_id"], **{k: cand[k] for k in KEY}})
            continue
        rows.append(final_row(cand, cluster, sum(redaction.values()), replace_mentions, config))
    for k, start in enumerate(range(0, len(rows), task.part_rows)):
        df = CleanedIssuesSchema.validate(cleaned_rows_frame(rows[start : start + task.part_rows]))
        out.languages.update(df["lang"])
        out.n_cleaned += len(df)
        path = task.out_prefix.with_name(f"{task.out_prefix.name}-{k:04d}.parquet")
        pq.write_table(pa.Table.from_pandas(df, schema=CLEANED_ARROW_SCHEMA, preserve_index=False), path)
        out.parts.append(path)
    return out


def _finish(
    facts_parts: list[pa.Table],
    spills: list[_Spill],
    quarantine: dict[int, dict],
    index: MinHashIndex,
    out_dir: Path,
    config: CleaningConfig,
    part_rows: int,
    pool: ProcessPoolExecutor | None,
    workers: int,
) -> StreamResult:
    facts = pa.concat_tables(facts_parts) if facts_parts else _FACTS_SCHEMA.empty_table()
    del facts_parts
    n_raw = facts.num_rows
    # 1. Latest version wins: updated_at, then payload size, then hash (row i is at position i), sorted in
    # Arrow with keys as integer codes: no Python object per row.
    sort_keys = [(c, "ascending", "at_start") for c in ("updated_at", "size", "sha")]  # nulls first
    order = pc.sort_indices(facts, sort_keys=sort_keys).to_numpy()
    codes = pc.dictionary_encode(facts.column("key")).combine_chunks().indices.to_numpy()[order]
    _, last_from_end = np.unique(codes[::-1], return_index=True)  # each key's last row in that order
    loser = np.ones(n_raw, dtype=bool)
    loser[order[n_raw - 1 - last_from_end]] = False
    del order, codes, last_from_end

    # Vectorised over Arrow columns: per-row Python objects would cost ~1 KiB per raw row at 1M rows.
    live = pa.array(~loser)
    kind = facts.column("kind")
    # Lower-cased, as mention_replacer compares them (logins are case-insensitive on forges).
    logins = frozenset(
        login.lower() for login in pc.unique(pc.list_flatten(facts.filter(live).column("logins"))).to_pylist() if login
    )
    out_mask = pc.or_(pa.array(loser), pc.equal(kind, "filtered"))
    out_rows = facts.filter(out_mask)
    key_parts = pc.split_pattern(out_rows.column("key"), _KEY_SEP)
    filtered: dict[str, list] = {
        "issue_id": out_rows.column("issue_id").to_pylist(),
        **{k: pc.list_element(key_parts, n).to_pylist() for n, k in enumerate(KEY)},
        "reason": pc.if_else(pa.array(loser[out_mask.to_numpy(zero_copy_only=False)]), "superseded",
                             out_rows.column("reason")).to_pylist(),
    }  # fmt: skip
    del out_rows, key_parts
    q_rows = facts.filter(pc.and_(live, pc.equal(kind, "quarantined"))).column("i").to_pylist()
    quarantined = [quarantine[i] for i in q_rows]
    cands = facts.filter(pc.and_(live, pc.equal(kind, "candidate"))).select(["i", "issue_id", "created_at"])
    cand_ids = dict(zip(cands.column("i").to_pylist(), cands.column("issue_id").to_pylist()))
    # Nanoseconds, not Timestamp objects: the same order at a fraction of the memory and time.
    cand_created = cands.column("created_at").cast(pa.int64()).to_pylist()
    del facts, quarantine, cands

    # 5. Near-duplicates among the latest versions: the earliest report survives. Only the ids that
    # have a near-duplicate are held (a few percent); the others are their own cluster and survive.
    roots = index.cluster_roots(id_of=cand_ids)
    del index
    members = {id_: created for id_, created in zip(cand_ids.values(), cand_created) if id_ in roots}
    losers = set(roots) - survivors(list(members), list(members.values()), roots)
    del cand_created, members

    def tasks() -> Iterator[_PartTask]:
        for k, spill in enumerate(spills):
            decisions = {}
            for i in spill.rows.tolist():
                issue_id = cand_ids.get(i)
                if issue_id is not None:
                    decisions[i] = (roots.get(issue_id, issue_id), issue_id not in losers)
            yield _PartTask(spill.path, out_dir / f"part-{k:06d}", decisions, spill.mentions & logins, config, part_rows)

    comment_counts: Counter = Counter()
    redaction_counts: Counter = Counter()
    languages: Counter = Counter()
    parts: list[Path] = []
    n_cleaned = 0
    for res in in_order(pool, workers, _final_part, tasks()):
        parts += res.parts
        n_cleaned += res.n_cleaned
        for row in res.near_duplicates:
            for k in ("issue_id", *KEY):
                filtered[k].append(row[k])
            filtered["reason"].append("near_duplicate")
        comment_counts.update(res.comment_counts)
        redaction_counts.update(res.redaction_counts)
        languages.update(res.languages)
    if not parts:  # no cleaned row: one empty part, so the parts always carry the table's schema
        parts.append(out_dir / "part-000000.parquet")
        pq.write_table(CLEANED_ARROW_SCHEMA.empty_table(), parts[0])

    result = StreamResult(
        cleaned_parts=parts,
        quarantined=QuarantinedIssuesSchema.validate(_frame(quarantined, QUARANTINED_COLUMNS)),
        filtered=FilteredIssuesSchema.validate(pd.DataFrame(filtered, columns=FILTERED_COLUMNS)),
    )
    result.counts = {
        "raw": n_raw,
        "cleaned": n_cleaned,
        "quarantined": dict(Counter(result.quarantined["reason"])),
        "filtered": dict(Counter(result.filtered["reason"])),
        "comments": dict(comment_counts),
        "redactions": dict(redaction_counts),
        "languages": dict(languages),
    }
    n_out = n_cleaned + len(result.quarantined) + len(result.filtered)
    if n_out != n_raw:  # a bug here would silently lose or invent rows: fail loudly instead
        raise AssertionError(f"reconciliation failed: {n_raw} raw rows, {n_out} accounted for")
    return result
