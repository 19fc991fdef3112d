"""`llama-platform snapshots list|show|diff`: the dataset versions in the object store.

cli.py wires it in: `add_snapshot_commands(subparsers, get_store)`, where `get_store()` opens the
configured store (a folder or S3). Each command prints text, or JSON with `--json`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, TextIO

from llama_platform.data.schemas import SPLITS
from llama_platform.data.snapshot import list_snapshots, read_snapshot_columns, resolve_manifest
from llama_platform.data.store import StoreLocation

GetStore = Callable[[], StoreLocation]


def add_snapshot_commands(subparsers: argparse._SubParsersAction, get_store: GetStore) -> argparse.ArgumentParser:
    """Add `snapshots {list,show,diff}` to a CLI's subparsers; each sets `func(args) -> exit code`."""
    snap = subparsers.add_parser("snapshots", help="list, show and compare dataset snapshots")
    sub = snap.add_subparsers(dest="snapshots_command", required=True)

    def wire(parser: argparse.ArgumentParser, fn: Callable[..., int], *names: str) -> None:
        parser.add_argument("--json", action="store_true", help="print JSON instead of text")
        parser.set_defaults(func=lambda args: fn(get_store(), *(getattr(args, n) for n in names), as_json=args.json))

    wire(sub.add_parser("list", help="every snapshot, oldest first: version, created, rows per split, hash"), cmd_list)
    show = sub.add_parser("show", help="a snapshot's manifest, lineage and label distribution")
    show.add_argument("version", nargs="?", help="version (16 hex digits) or content hash; default: latest")
    wire(show, cmd_show, "version")
    diff = sub.add_parser("diff", help="what changed from snapshot A to snapshot B")
    diff.add_argument("a", help="the older version")
    diff.add_argument("b", help="the newer version")
    wire(diff, cmd_diff, "a", "b")
    return snap


def _print_json(obj: Any, out: TextIO) -> None:
    out.write(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def _table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() + "\n")


def cmd_list(store: StoreLocation, as_json: bool = False, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    manifests = list_snapshots(store)
    latest = resolve_manifest(store)["version"] if manifests else None
    summary = [
        {
            "version": m["version"],
            "created_at": m["created_at"],
            "row_counts": m["row_counts"],
            "total_rows": m["total_rows"],
            "content_hash": m["content_hash"],
            "latest": m["version"] == latest,
        }
        for m in manifests
    ]
    if as_json:
        _print_json(summary, out)
        return 0
    if not summary:
        out.write(f"no snapshots in {store.uri('snapshots')}\n")
        return 0
    rows = [["VERSION", "CREATED", *[s.upper() for s in SPLITS], "TOTAL", "CONTENT HASH"]]
    for s in summary:
        rows.append(
            [
                s["version"] + (" *" if s["latest"] else ""),
                s["created_at"][:19].replace("T", " "),
                *[str(s["row_counts"].get(split, 0)) for split in SPLITS],
                str(s["total_rows"]),
                s["content_hash"],
            ]
        )
    _table(rows, out)
    out.write("(* latest)\n")
    return 0


def cmd_show(store: StoreLocation, version: str | None = None, as_json: bool = False, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    m = resolve_manifest(store, version)
    if as_json:
        _print_json(m, out)
        return 0
    out.write(f"snapshot   {m['version']}\n")
    out.write(f"hash       {m['content_hash']}\n")
    out.write(f"created    {m['created_at']}\n")
    out.write(f"table      {store.uri('snapshots', m['version'], m['table']['path'])} (Delta)\n")
    out.write(f"rows       {m['total_rows']}  " + "  ".join(f"{s}={m['row_counts'][s]}" for s in SPLITS) + "\n")
    out.write("lineage\n")
    for key, value in sorted(m["lineage"].items()):
        out.write(f"  {key}: {json.dumps(value, ensure_ascii=False)}\n")
    for title, key in (("labels", "label_counts"), ("languages", "lang_counts")):
        counts = m[key]
        names = sorted({name for per_split in counts.values() for name in per_split})
        rows = [[title.upper(), *[s.upper() for s in SPLITS], "TOTAL"]]
        for name in names:
            per = [counts[s].get(name, 0) for s in SPLITS]
            rows.append([name, *map(str, per), str(sum(per))])
        _table(rows, out)
    return 0


def snapshot_diff(store: StoreLocation, a: str, b: str) -> dict[str, Any]:
    """Row, split and label count changes from A to B, and issue ids added, removed, changed, moved."""
    ma, mb = resolve_manifest(store, a), resolve_manifest(store, b)
    cols = ["issue_id", "split", "raw_hash"]
    da = read_snapshot_columns(store, ma["version"], cols).set_index("issue_id")
    db = read_snapshot_columns(store, mb["version"], cols).set_index("issue_id")
    common = da.index.intersection(db.index)

    def change(x: int, y: int) -> dict[str, int]:
        return {"a": x, "b": y, "delta": y - x}

    def label_totals(m: dict) -> dict[str, int]:
        totals: dict[str, int] = {}
        for per_split in m["label_counts"].values():
            for name, n in per_split.items():
                totals[name] = totals.get(name, 0) + n
        return totals

    la, lb = label_totals(ma), label_totals(mb)
    return {
        "a": ma["version"],
        "b": mb["version"],
        "rows": change(ma["total_rows"], mb["total_rows"]),
        "splits": {s: change(ma["row_counts"][s], mb["row_counts"][s]) for s in SPLITS},
        "labels": {name: change(la.get(name, 0), lb.get(name, 0)) for name in sorted(set(la) | set(lb))},
        "issues": {
            "added": int(len(db.index.difference(da.index))),
            "removed": int(len(da.index.difference(db.index))),
            "changed": int((da.loc[common, "raw_hash"] != db.loc[common, "raw_hash"]).sum()),
            "moved_split": int((da.loc[common, "split"] != db.loc[common, "split"]).sum()),
            "unchanged": int(
                ((da.loc[common, "raw_hash"] == db.loc[common, "raw_hash"]) & (da.loc[common, "split"] == db.loc[common, "split"])).sum()
            ),
        },
    }


def cmd_diff(store: StoreLocation, a: str, b: str, as_json: bool = False, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    d = snapshot_diff(store, a, b)
    if as_json:
        _print_json(d, out)
        return 0
    out.write(f"{d['a']} -> {d['b']}\n")
    rows = [["", "A", "B", "DELTA"]]
    rows.append(["rows", *(f"{d['rows'][k]:+d}" if k == "delta" else str(d["rows"][k]) for k in ("a", "b", "delta"))])
    for group in ("splits", "labels"):
        for name, c in d[group].items():
            rows.append([f"{group[:-1]} {name}", str(c["a"]), str(c["b"]), f"{c['delta']:+d}"])
    _table(rows, out)
    out.write("issues     " + "  ".join(f"{k}={v}" for k, v in d["issues"].items()) + "\n")
    return 0
