"""Stage 2: the preprocessor. Raw forge records -> cleaned issues + quarantined issues (+ counted filters)."""

import tempfile
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetOut,
    DataVersion,
    MetadataValue,
    Nothing,
    Output,
    asset_check,
    multi_asset,
)
from dagster_pandera import pandera_schema_to_dagster_type

from llama_platform.assets.automation import follow_raw
from llama_platform.assets.common import bar_plot, check_result, code_version_of, column_schema, png_markdown, preview, table_type
from llama_platform.assets.versioning import cleaned_data_version, raw_fingerprint
from llama_platform.data import quality
from llama_platform.data.schemas import CleanedIssuesSchema, QuarantinedIssuesSchema
from llama_platform.data.streaming import cleaned_frame, stream_clean
from llama_platform.resources.cleaning import CleaningResource
from llama_platform.resources.io_manager import ParquetParts


CLEAN_CODE_VERSION = code_version_of("assets/cleaning.py", "data")


@multi_asset(
    group_name="preprocessing",
    # Read in batches by the step itself (not loaded whole): memory stays bounded at any size.
    ins={"raw_issues": AssetIn(dagster_type=Nothing)},
    outs={
        "cleaned_issues": AssetOut(
            io_manager_key="parquet_io_manager",
            automation_condition=follow_raw,
            dagster_type=table_type(CleanedIssuesSchema),
            code_version=CLEAN_CODE_VERSION,
            tags={"stage": "clean"},
            description="Training-ready issues: normalised, de-botted, auto-text stripped, PII/secrets redacted, near-deduplicated.",
            kinds={"pandas", "parquet"},
        ),
        "quarantined_issues": AssetOut(
            io_manager_key="parquet_io_manager",
            automation_condition=follow_raw,
            dagster_type=pandera_schema_to_dagster_type(QuarantinedIssuesSchema),
            code_version=CLEAN_CODE_VERSION,
            tags={"stage": "clean"},
            description="Every raw record that could not be used, with the reason.",
            kinds={"pandas", "parquet"},
        ),
    },
    check_specs=[
        AssetCheckSpec(
            "reconciliation",
            asset="cleaned_issues",
            blocking=True,
            description="raw = cleaned + quarantined + filtered, and per-reason counts add up",
        ),
    ],
)
def clean(context: AssetExecutionContext, cleaning: CleaningResource):
    """Streams raw partitions through `stream_clean`: chunks are cleaned (in `cleaning.workers`
    processes), candidates spill to local disk, and the cleaned rows are written part by part."""
    io_manager = context.resources.parquet_io_manager
    keys: list[str | None] = [None]  # an unpartitioned upstream (tests stub raw_issues so)
    if context.instance.get_materialized_partitions(AssetKey("raw_issues")):
        keys = [str(k) for k in context.asset_partition_keys_for_input("raw_issues")]
    batches = io_manager.iter_batches(["raw_issues"], keys, cleaning.chunk_rows, log=context.log)
    # Same raw rows + same code = same data version: downstream stays fresh (see assets/versioning.py).
    data_version = DataVersion(cleaned_data_version(CLEAN_CODE_VERSION, raw_fingerprint(io_manager, keys)))
    done = 0

    def progress(n: int) -> None:  # a line per ~50k records: a 1M-record run logs 20, not 200
        nonlocal done
        if (done + n) // 50_000 > done // 50_000 or done == 0:
            context.log.info(f"cleaned {done + n} raw records so far")
        done += n

    Path(cleaning.spill_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cleaning.spill_dir, prefix=f"{context.run_id[:8]}-") as spill:
        result = stream_clean(batches, Path(spill), workers=cleaning.workers, progress=progress)
        counts = result.counts
        filtered_by_reason, quarantined_by_reason = counts["filtered"], counts["quarantined"]
        n_raw, n_clean = counts["raw"], counts["cleaned"]
        n_quar, n_filt = len(result.quarantined), len(result.filtered)
        context.log.info(
            f"raw {n_raw} = cleaned {n_clean} + quarantined {n_quar} + filtered {n_filt} {filtered_by_reason}"
        )
        label_counts: Counter = Counter()
        redactions = 0
        for path in result.cleaned_parts:
            part = pq.read_table(path, columns=["label", "redactions"])
            label_counts.update(part.column("label").to_pylist())
            redactions += int(pc.sum(part.column("redactions")).as_py() or 0)
        first = cleaned_frame(pq.read_table(result.cleaned_parts[0]).slice(0, 20))
        yield Output(
            ParquetParts(result.cleaned_parts),
            output_name="cleaned_issues",
            data_version=data_version,
            metadata={
                "row_count": MetadataValue.int(n_clean),
                "raw_count": MetadataValue.int(n_raw),
                "filtered": MetadataValue.json(filtered_by_reason),
                "quarantined": MetadataValue.json(quarantined_by_reason),
                "labels": MetadataValue.json(dict(label_counts.most_common())),
                "label_distribution": png_markdown(bar_plot(dict(label_counts), "primary label"), "labels"),
                "filter_counts": png_markdown(
                    bar_plot({**filtered_by_reason, **{f"q:{k}": v for k, v in quarantined_by_reason.items()}},
                             "filtered / quarantined by reason"),
                    "filters",
                ),
                "redactions": MetadataValue.int(redactions),
                "preview": preview(first, ["issue_id", "label", "title", "n_comments"]),
                "dagster/column_schema": column_schema(first),
            },
        )
    yield Output(
        result.quarantined,
        output_name="quarantined_issues",
        data_version=data_version,
        metadata={
            "row_count": MetadataValue.int(n_quar),
            "by_reason": MetadataValue.json(quarantined_by_reason),
            "preview": preview(result.quarantined, ["issue_id", "reason", "detail"]),
        },
    )
    outcome = quality.reconcile(
        raw_count=n_raw,
        cleaned_count=n_clean,
        quarantined_reasons=result.quarantined["reason"],
        filtered_reasons=result.filtered["reason"],
        reported={"quarantined": quarantined_by_reason, "filtered": filtered_by_reason},
    )
    yield check_result(outcome, check_name="reconciliation", asset_key="cleaned_issues")


@asset_check(
    asset="cleaned_issues",
    blocking=True,
    required_resource_keys={"parquet_io_manager"},
    description="independent re-scan of the cleaned text (title, body, comments): detect-secrets' rules, an entropy sampler and the PII checks find no PII or secret",
)
def no_secret_survives(context: AssetCheckExecutionContext) -> AssetCheckResult:
    batches = context.resources.parquet_io_manager.iter_batches(["cleaned_issues"])
    outcome = quality.no_secret_survives(cleaned_frame(b) for b in batches)
    context.log.info(outcome.description)
    return check_result(outcome)
