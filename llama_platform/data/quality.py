"""Pure data-quality checks behind the Dagster asset checks (the validator).

Each function takes frames or counts and returns a result with `passed` and JSON-able `metadata`.
Metadata names issues and finding types, never the offending text: a check that found a secret must
not publish it in the UI.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import pandas as pd
from pandera.errors import SchemaError, SchemaErrors

from llama_platform.data.verify import verify
from llama_platform.data.schemas import SnapshotSchema

# The columns of a cleaned issue that hold forge text (and so could still hold a secret).
TEXT_COLUMNS = ("title", "body", "comments_text")
DEFAULT_DRIFT_THRESHOLD = 0.15  # total variation distance: 15% of the label mass moved between labels
SAMPLE_SIZE = 20  # how many offending ids a check lists in its metadata


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    metadata: dict[str, Any] = field(default_factory=dict)
    description: str = ""


def _counts(values: Iterable[Any]) -> dict[str, int]:
    return dict(sorted(Counter(str(v) for v in values).items()))


def reconcile(
    raw_count: int,
    cleaned_count: int,
    quarantined_reasons: Iterable[str],
    filtered_reasons: Iterable[str],
    reported: Mapping[str, Mapping[str, int]],
) -> CheckOutcome:
    """raw = cleaned + quarantined + filtered, and each reported per-reason count equals its rows.

    `quarantined_reasons` / `filtered_reasons` are the `reason` column of the rows actually produced;
    `reported` is what the cleaner says it did ({"quarantined": {reason: n}, "filtered": {reason: n}}),
    i.e. the figures shown in the UI. Both must agree reason by reason.
    """
    actual = {"quarantined": _counts(quarantined_reasons), "filtered": _counts(filtered_reasons)}
    problems = []
    for kind, rows_by_reason in actual.items():
        claimed = {str(k): int(v) for k, v in reported.get(kind, {}).items()}
        for reason in sorted(set(claimed) | set(rows_by_reason)):
            n_claimed, n_rows = claimed.get(reason, 0), rows_by_reason.get(reason, 0)
            if n_claimed != n_rows:
                problems.append(f"{kind}:{reason} reported {n_claimed}, rows {n_rows}")
    n_quar, n_filt = sum(actual["quarantined"].values()), sum(actual["filtered"].values())
    accounted = cleaned_count + n_quar + n_filt
    if accounted != raw_count:
        problems.append(f"raw {raw_count} != cleaned {cleaned_count} + quarantined {n_quar} + filtered {n_filt}")
    return CheckOutcome(
        passed=not problems,
        metadata={
            "raw": raw_count,
            "cleaned": cleaned_count,
            "quarantined": n_quar,
            "filtered": n_filt,
            "unaccounted": raw_count - accounted,
            "quarantined_by_reason": actual["quarantined"],
            "filtered_by_reason": actual["filtered"],
            "problems": problems,
        },
        description="; ".join(problems) if problems else f"all {raw_count} raw rows accounted for, per reason",
    )


def secret_findings(df: pd.DataFrame, columns: Iterable[str] = TEXT_COLUMNS) -> dict[str, list[str]]:
    """{issue_id: ["body:SECRET:GitHubToken", ...]} for every issue whose text still holds PII/secrets (rule names, never values)."""
    columns = [c for c in columns if c in df.columns]
    found: dict[str, list[str]] = {}
    for issue_id, *texts in df[["issue_id", *columns]].itertuples(index=False, name=None):
        kinds = [f"{col}:{kind}" for col, text in zip(columns, texts) for kind in verify(text)]
        if kinds:
            found[str(issue_id)] = kinds
    return found


def no_secret_survives(
    frames: pd.DataFrame | Iterable[pd.DataFrame], columns: Iterable[str] = TEXT_COLUMNS
) -> CheckOutcome:
    """Re-scan cleaned text with detectors independent of the redactor's (`verify.py`: detect-secrets'
    rules, an entropy sampler, the PII checks): anything found got past redaction.

    `frames`: the cleaned rows, in one frame or as a stream of frames (a table too large to load).
    """
    columns = list(columns)
    found: dict[str, list[str]] = {}
    rows = 0
    for df in [frames] if isinstance(frames, pd.DataFrame) else frames:
        found.update(secret_findings(df, columns))
        rows += len(df)
    by_type = _counts(kind.split(":", 1)[1] for kinds in found.values() for kind in kinds)
    return CheckOutcome(
        passed=not found,
        metadata={
            "rows_scanned": rows,
            "issues_with_findings": len(found),
            "findings_by_type": by_type,
            "sample": {k: found[k] for k in sorted(found)[:SAMPLE_SIZE]},  # ids and types, never the text
        },
        description=f"{len(found)} issues still hold PII/secrets: {by_type}" if found else "no PII or secret found",
    )


def straddling_clusters(df: pd.DataFrame) -> list[str]:
    """Near-duplicate clusters whose members sit in more than one split (leakage)."""
    if df.empty:
        return []
    splits_per_cluster = df.groupby("dup_cluster")["split"].nunique()
    return sorted(str(c) for c in splits_per_cluster[splits_per_cluster > 1].index)


def no_cluster_straddles_splits(df: pd.DataFrame) -> CheckOutcome:
    straddling = straddling_clusters(df)
    return CheckOutcome(
        passed=not straddling,
        metadata={"straddling_clusters": len(straddling), "sample": straddling[:SAMPLE_SIZE]},
        description=f"{len(straddling)} duplicate clusters span two splits" if straddling else "no leakage",
    )


def snapshot_schema(df: pd.DataFrame) -> CheckOutcome:
    """Validate a snapshot frame against SnapshotSchema, collecting every failure (lazy validation).

    The metadata counts failures per (column, check); failure values are left out, as they could be
    anything from the data.
    """
    try:
        SnapshotSchema.validate(df, lazy=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases
        # Frame-level checks report one case per column of a failing row: count rows, not cells.
        where = cases["column"].astype(str).where(cases["schema_context"] == "Column", "frame")
        # A missing or unexpected column's failure case is its name (not data), so it may be shown.
        named = cases["check"].isin(["column_in_dataframe", "column_in_schema"])
        where = where.where(~named, cases["failure_case"].astype(str))
        keys = (where + ":" + cases["check"].astype(str)).rename("key")
        failing = pd.concat([keys, cases["index"].astype(str)], axis=1).drop_duplicates()
        by_check = _counts(failing["key"])
        return CheckOutcome(False, {"rows": len(df), "failures": by_check}, f"schema violations: {by_check}")
    except SchemaError as exc:  # raised on its own for frame-level problems (e.g. a missing column)
        return CheckOutcome(False, {"rows": len(df), "failures": {"frame": 1}}, f"schema violation: {exc.reason_code}")
    return CheckOutcome(True, {"rows": len(df), "failures": {}}, "snapshot matches SnapshotSchema")


def label_shares(counts: Mapping[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {str(k): (v / total if total else 0.0) for k, v in sorted(counts.items())}


def total_variation(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Half the L1 distance between two distributions: the share of mass that has to move (0..1)."""
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


def manifest_label_counts(manifest: Mapping[str, Any]) -> dict[str, int] | None:
    """Primary-label counts recorded in a snapshot manifest (summed over splits), if it records them."""
    per_split = manifest.get("label_counts")
    if not isinstance(per_split, Mapping):
        return None
    total: Counter = Counter()
    for counts in per_split.values():
        total.update({str(k): int(v) for k, v in counts.items()})
    return dict(sorted(total.items()))


def label_drift(
    current: Mapping[str, int],
    previous: Mapping[str, int] | None,
    threshold: float = DEFAULT_DRIFT_THRESHOLD,
    previous_version: str | None = None,
) -> CheckOutcome:
    """Total variation distance between the label distributions of this and the previous snapshot.

    Passes when there is no previous snapshot to compare with, or the distance is <= threshold.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be within [0, 1], got {threshold}")
    now = label_shares(current)
    if previous is None:
        return CheckOutcome(True, {"threshold": threshold, "current_shares": now}, "no previous snapshot")
    before = label_shares(previous)
    tvd = total_variation(now, before)
    biggest = sorted(set(now) | set(before), key=lambda k: -abs(now.get(k, 0.0) - before.get(k, 0.0)))[:3]
    moves = ", ".join(f"{k} {before.get(k, 0.0):.0%}->{now.get(k, 0.0):.0%}" for k in biggest)
    return CheckOutcome(
        passed=tvd <= threshold,
        metadata={
            "total_variation": round(tvd, 4),
            "threshold": threshold,
            "previous_version": previous_version,
            "current_shares": {k: round(v, 4) for k, v in now.items()},
            "previous_shares": {k: round(v, 4) for k, v in before.items()},
        },
        description=f"label distribution moved {tvd:.3f} (threshold {threshold}) vs {previous_version}: {moves}",
    )
