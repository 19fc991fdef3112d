"""Redaction quality on the labelled set (llama_platform_tests/data/redaction_cases.py), next to detect-secrets alone.

    .venv/bin/python benchmarks/redaction_quality.py [--seed 20261130] [--misses]

Prints, for our redactor (`redact`) and for detect-secrets' plugins alone (what redaction ran
before; every span they find replaced): recall per kind, overall secret recall, PII recall and
keep-rate (the share of look-alike negatives left intact), and CPU microseconds per case.
Goals (issue 9): secret recall >= 99%, PII recall >= 95%, keep-rate >= 97%.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llama_platform.data.redaction import redact  # noqa: E402
from llama_platform.data.verify import detect_secrets_findings  # noqa: E402
from llama_platform_tests.data.redaction_cases import SEED, cases, outcome  # noqa: E402

GOALS = {"secret_recall": 0.99, "pii_recall": 0.95, "keep_rate": 0.97}


def detect_secrets_redact(text: str) -> str:
    """detect-secrets alone: every span its plugins find replaced by a placeholder."""
    spans = sorted(detect_secrets_findings(text))
    out, pos = [], 0
    for start, end, kind in spans:
        if start < pos:
            start = pos
        if end <= start:
            continue
        out += [text[pos:start], f"<SECRET:{kind}>"]
        pos = end
    return "".join(out) + text[pos:]


def score(redactor, labelled) -> dict:
    per_kind: dict[str, list[bool]] = defaultdict(list)
    by_group: dict[str, list[bool]] = defaultdict(list)
    misses = []
    t0 = time.process_time()  # CPU time: the machine may be shared
    results = [(case, outcome(case, redactor(case.text))) for case in labelled]
    elapsed = time.process_time() - t0
    for case, ok in results:
        per_kind[case.kind].append(ok)
        by_group[case.group].append(ok)
        if not ok:
            misses.append(case)

    def rate(xs: list[bool]) -> float:
        return round(sum(xs) / len(xs), 4) if xs else 0.0

    return {
        "secret_recall": rate(by_group["secret"]),
        "pii_recall": rate(by_group["pii"]),
        "keep_rate": rate(by_group["negative"]),
        "us_per_case": round(elapsed / len(labelled) * 1e6, 1),
        "per_kind": {k: rate(v) for k, v in sorted(per_kind.items())},
        "misses": misses,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--misses", action="store_true", help="print the cases each redactor got wrong")
    args = p.parse_args()
    labelled = cases(args.seed)
    redact("warm up: load rules and the prefilter")
    detect_secrets_redact("warm up")
    score(lambda t: redact(t)[0], labelled)  # a first pass loads phonenumbers' metadata per country
    ours = score(lambda t: redact(t)[0], labelled)
    baseline = score(detect_secrets_redact, labelled)
    counts = {g: sum(c.group == g for c in labelled) for g in ("secret", "pii", "negative")}
    print(f"{len(labelled)} cases: {counts}")
    print(f"{'kind':28} {'ours':>7} {'detect-secrets':>15}")
    for kind in ours["per_kind"]:
        print(f"{kind:28} {ours['per_kind'][kind]:7.0%} {baseline['per_kind'][kind]:15.0%}")
    summary = {
        name: {k: v for k, v in res.items() if k not in ("per_kind", "misses")}
        for name, res in (("ours", ours), ("detect_secrets", baseline))
    }
    summary["goals"] = GOALS
    summary["goals_met"] = all(ours[k] >= v for k, v in GOALS.items())
    print(json.dumps(summary, indent=2))
    if args.misses:
        for case in ours["misses"]:
            print(f"--- MISS {case.kind} ({case.group})\n{case.text}\n")


if __name__ == "__main__":
    main()
