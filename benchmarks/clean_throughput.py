"""Throughput of the data path: clean + redact + dedup + validate + write snapshot, against an I/O floor.

    .venv/bin/python benchmarks/clean_throughput.py [--issues 100000] [--workers 2] [--chunk 5000]

Generates N raw issues with comments (GitHub wire format, built from the shipped corpus: its issue
and comment JSON as templates, bodies recombined from its paragraphs, with PRs, bots, secrets and
near-duplicates planted), writes them as a Parquet raw table, then times in the same process:

  floor     read the raw table and write it unchanged (streamed by row group);
  pipeline  what the clean and issue_snapshot assets run: stream the raw table in Arrow batches
            through `stream_clean` (a process pool; candidate rows and MinHash signatures spilled
            to disk, only per-row facts in memory), then `write_snapshot_streaming` (validated,
            split, hashed and written as a Delta table). This is the one cleaning path (the
            in-memory variant is a test oracle only, not measured here).

Prints issues/s, peak RSS (this process, and the largest worker) and floor_ratio = pipeline / floor,
and clean_cpu_s: CPU seconds of the clean phase, this process and its workers. On a shared machine
compare clean_cpu_s, not wall time, between versions, over runs interleaved one version after the other.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llama_platform.data.cleaning import CleaningConfig  # noqa: E402
from llama_platform.data.snapshot import write_snapshot_streaming  # noqa: E402
from llama_platform.data.store import open_store  # noqa: E402
from llama_platform.data.streaming import stream_clean  # noqa: E402
from llama_platform.replay.corpus import load_corpus  # noqa: E402
from llama_platform.sources.records import RAW_COLUMNS, canonical_json, payload_hash  # noqa: E402

CORPUS = ROOT / "llama_platform" / "replay" / "corpus"
RAW_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("repo", pa.string()),
        ("number", pa.string()),
        ("updated_at", pa.timestamp("ns", tz="UTC")),
        ("payload", pa.string()),
        ("payload_sha256", pa.string()),
    ]
)


def _templates():
    issues, comments, paragraphs, logins = [], [], [], set()
    for d in load_corpus(CORPUS):
        if d["source"] != "github":
            continue
        by_issue = defaultdict(list)
        for c in d["comments"]:
            by_issue[c["issue_url"].rsplit("/", 1)[-1]].append(c)
            if isinstance(c.get("body"), str):
                paragraphs += [p for p in c["body"].split("\n\n") if p.strip()]
        for i in d["issues"]:
            if isinstance(i.get("body"), str) and isinstance(i.get("title"), str) and len(i["body"]) < 20_000:
                issues.append((i, by_issue.get(str(i["number"]), [])))
                paragraphs += [p for p in i["body"].split("\n\n") if p.strip()]
                logins.add(i["user"]["login"])
    return issues, comments, paragraphs, sorted(logins)


def generate(n: int, path: Path, seed: int = 7, batch: int = 10_000) -> int:
    """Write n raw rows to a Parquet file in row groups of `batch`; returns the payload bytes."""
    rng = random.Random(seed)
    issues, _, paragraphs, logins = _templates()
    repos = [f"org{k}/project{k}" for k in range(40)]
    total = 0
    recent: list[tuple[str, str]] = []
    with pq.ParquetWriter(path, RAW_SCHEMA) as writer:
        for start in tqdm(range(0, n, batch), desc="generate", unit_scale=batch, unit="issues"):
            cols = {c: [] for c in RAW_COLUMNS}
            for k in range(start, min(n, start + batch)):
                template, tcomments = rng.choice(issues)
                issue = dict(template)
                if recent and rng.random() < 0.03:  # a near-duplicate of a recent issue (mirror or re-report)
                    title, body = rng.choice(recent)
                    body += "\n\nSame here on my machine."
                else:
                    title = f"{template['title']} ({rng.choice(paragraphs)[:40]})"
                    body = "\n\n".join(rng.sample(paragraphs, rng.randint(3, 8)))
                    recent = (recent + [(title, body)])[-500:]
                repo = rng.choice(repos)
                day = 1 + k % 28
                issue.update(
                    number=k + 1,
                    title=title,
                    body=body,
                    user={**template["user"], "login": rng.choice(logins)},
                    created_at=f"2025-{1 + k % 12:02d}-{day:02d}T10:00:00Z",
                    updated_at=f"2025-{1 + k % 12:02d}-{day:02d}T12:00:00Z",
                )
                comments = []
                for c in tcomments[: rng.randint(0, 5)]:
                    c = dict(c)
                    if c.get("user", {}).get("type") != "Bot":
                        c["user"] = {**c["user"], "login": rng.choice(logins)}
                        c["body"] = "\n\n".join(rng.sample(paragraphs, rng.randint(1, 3)))
                    c["created_at"] = f"2025-{1 + k % 12:02d}-{day:02d}T11:00:00Z"
                    comments.append(c)
                payload = canonical_json({"issue": issue, "comments": comments})
                total += len(payload)
                cols["source"].append("github")
                cols["repo"].append(repo)
                cols["number"].append(str(k + 1))
                cols["updated_at"].append(issue["updated_at"])
                cols["payload"].append(payload)
                cols["payload_sha256"].append(payload_hash(payload))
            cols["updated_at"] = pa.array(cols["updated_at"]).cast(pa.timestamp("s", tz="UTC")).cast(RAW_SCHEMA.field("updated_at").type)
            writer.write_table(pa.table(cols, schema=RAW_SCHEMA))
    return total


def _peak_rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # kB on Linux


def floor(raw: Path, out: Path) -> float:
    t0 = time.perf_counter()
    src = pq.ParquetFile(raw)
    with pq.ParquetWriter(out, src.schema_arrow) as writer:
        for i in range(src.num_row_groups):
            writer.write_table(src.read_row_group(i))
    return time.perf_counter() - t0


def _cpu_s() -> float:
    """CPU seconds of this process and its waited-for children (the cleaning pool, once shut down)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def pipeline_streaming(raw: Path, work: Path, workers: int, chunk: int) -> tuple[float, dict]:
    cpu0 = _cpu_s()
    t0 = time.perf_counter()
    src = pq.ParquetFile(raw, pre_buffer=False)  # as the IO manager reads it: flat memory
    bar = tqdm(total=src.metadata.num_rows, desc="clean (streaming)", unit="issues")
    chunks = (b for b in src.iter_batches(batch_size=chunk))
    result = stream_clean(chunks, work / "spill", CleaningConfig(), workers=workers, progress=bar.update, part_rows=chunk)
    bar.close()
    t_clean = time.perf_counter() - t0
    cpu_clean = _cpu_s() - cpu0
    rss_clean = _peak_rss_mib()
    lineage = {"raw_partitions": ["benchmark"], "code_version": "bench"}
    info = write_snapshot_streaming(open_store(f"file://{work / 'store'}"), result.iter_cleaned, lineage)
    total = time.perf_counter() - t0
    return total, {"clean_s": t_clean, "clean_cpu_s": cpu_clean, "snapshot_s": total - t_clean, "counts": result.counts, "version": info.version,
                   "peak_rss_mib_after_clean": rss_clean}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--issues", type=int, default=100_000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--chunk", type=int, default=5_000)
    p.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp folder)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        tmp = Path(tmp)
        raw = tmp / "raw.parquet"
        payload_bytes = generate(args.issues, raw)
        rss_after_generate = _peak_rss_mib()
        t_floor = floor(raw, tmp / "copy.parquet")
        t_pipe, details = pipeline_streaming(raw, tmp, args.workers, args.chunk)
    c = details["counts"]
    figures = {
        "issues": args.issues,
        "workers": args.workers,
        "chunk": args.chunk,
        "raw_payload_mib": round(payload_bytes / 2**20, 1),
        "floor_s": round(t_floor, 2),
        "pipeline_s": round(t_pipe, 2),
        "clean_s": round(details["clean_s"], 2),
        "clean_cpu_s": round(details["clean_cpu_s"], 2),
        "snapshot_s": round(details["snapshot_s"], 2),
        "issues_per_s": round(args.issues / t_pipe),
        "floor_issues_per_s": round(args.issues / t_floor),
        "floor_ratio": round(t_pipe / t_floor, 2),
        "peak_rss_mib": round(_peak_rss_mib()),
        "peak_rss_mib_after_generate": round(rss_after_generate),
        "peak_rss_mib_after_clean": round(details.get("peak_rss_mib_after_clean", 0)) or None,
        "peak_worker_rss_mib": round(_peak_rss_mib(resource.RUSAGE_CHILDREN)),
        "cleaned": c["cleaned"],
        "filtered": c["filtered"],
        "quarantined": c["quarantined"],
        "languages": c["languages"],
        "redactions": sum(c["redactions"].values()),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
