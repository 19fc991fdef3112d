"""Stage 2: the preprocessor. Raw forge records -> cleaned issues + quarantined issues (+ counted filters)."""

import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    AssetOut,
    MetadataValue,
    Output,
    asset_check,
    multi_asset,
)
from dagster_pandera import pandera_schema_to_dagster_type

from llama_platform.assets.automation import follow_raw
from llama_platform.assets.common import bar_plot, check_result, column_schema, png_markdown, preview
from llama_platform.data import quality
from llama_platform.data.cleaning import clean_issues
from llama_platform.data.schemas import CleanedIssuesSchema, QuarantinedIssuesSchema


@multi_asset(
    group_name="preprocessing",
    ins={"raw_issues": AssetIn()},
    outs={
        "cleaned_issues": AssetOut(
            io_manager_key="parquet_io_manager",
            automation_condition=follow_raw,
            dagster_type=pandera_schema_to_dagster_type(CleanedIssuesSchema),
            description="Training-ready issues: normalised, de-botted, auto-text stripped, PII/secrets redacted, near-deduplicated.",
            kinds={"pandas", "parquet"},
        ),
        "quarantined_issues": AssetOut(
            io_manager_key="parquet_io_manager",
            automation_condition=follow_raw,
            dagster_type=pandera_schema_to_dagster_type(QuarantinedIssuesSchema),
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
def clean(context: AssetExecutionContext, raw_issues: pd.DataFrame):
    context.log.info(f"cleaning {len(raw_issues)} raw records")
    result = clean_issues(raw_issues)
    counts = result.counts
    filtered_by_reason = counts["filtered"]
    quarantined_by_reason = counts["quarantined"]
    n_raw, n_clean = len(raw_issues), len(result.cleaned)
    n_quar, n_filt = len(result.quarantined), len(result.filtered)
    context.log.info(
        f"raw {n_raw} = cleaned {n_clean} + quarantined {n_quar} + filtered {n_filt} {filtered_by_reason}"
    )
    label_counts = result.cleaned["label"].value_counts().to_dict() if n_clean else {}
    yield Output(
        result.cleaned,
        output_name="cleaned_issues",
        metadata={
            "row_count": MetadataValue.int(n_clean),
            "raw_count": MetadataValue.int(n_raw),
            "filtered": MetadataValue.json(filtered_by_reason),
            "quarantined": MetadataValue.json(quarantined_by_reason),
            "labels": MetadataValue.json(label_counts),
            "label_distribution": png_markdown(bar_plot(label_counts, "primary label"), "labels"),
            "filter_counts": png_markdown(
                bar_plot({**filtered_by_reason, **{f"q:{k}": v for k, v in quarantined_by_reason.items()}},
                         "filtered / quarantined by reason"),
                "filters",
            ),
            "redactions": MetadataValue.int(int(result.cleaned["redactions"].sum()) if n_clean else 0),
            "preview": preview(result.cleaned, ["issue_id", "label", "title", "n_comments"]),
            "dagster/column_schema": column_schema(result.cleaned),
        },
    )
    yield Output(
        result.quarantined,
        output_name="quarantined_issues",
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
    description="re-scan of the cleaned text (title, body, comments) with the redactor's detectors: no PII or secret survives",
)
def no_secret_survives(context: AssetCheckExecutionContext, cleaned_issues: pd.DataFrame) -> AssetCheckResult:
    outcome = quality.no_secret_survives(cleaned_issues)
    context.log.info(outcome.description)
    return check_result(outcome)
