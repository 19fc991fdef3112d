"""Stage 7: held-out evaluation of the fine-tuned model against a majority-class baseline."""

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from llama_platform.assets.automation import follow_upstream
from llama_platform.assets.common import bar_plot, code_version_of, png_markdown
from llama_platform.assets.lineage import upstream_metadata
from llama_platform.training.evaluate import evaluate


@asset(
    group_name="training",
    automation_condition=follow_upstream,
    deps=["finetuned_checkpoint"],
    description="Validation-split loss, perplexity and label accuracy, with a majority-class baseline.",
    kinds={"pytorch"},
    code_version=code_version_of("assets/evaluation.py", "training/evaluate.py"),
    tags={"stage": "evaluate"},
    check_specs=[
        AssetCheckSpec(
            "eval_sane",
            asset="model_evaluation",
            blocking=True,
            description="metrics are finite and the model predicts valid labels (blocks deployment otherwise)",
        ),
        AssetCheckSpec(
            "beats_majority_baseline",
            asset="model_evaluation",
            description="label accuracy at least the majority-class baseline (warning only while models are tiny)",
        ),
    ],
)
def model_evaluation(context: AssetExecutionContext, training_set: pd.DataFrame) -> MaterializeResult:
    ckpt = upstream_metadata(context, "finetuned_checkpoint")
    model_dir = ckpt["model_dir"]
    val = training_set[training_set["split"] == "val"]
    context.log.info(f"evaluating {ckpt.get('model_uri', model_dir)} on {len(val)} validation examples")
    # The baseline predicts the most common *training* label (recorded in the model's triage.json).
    metrics = evaluate(model_dir, val)
    per_label = {
        label: (v["correct"] / v["support"] if v["support"] else 0.0) for label, v in metrics["per_label"].items()
    }
    acc, base = metrics["label_accuracy"], metrics["majority_baseline_accuracy"]
    sane = bool(pd.notna(metrics["val_loss"]) and metrics["val_loss"] < 1e4 and 0.0 <= acc <= 1.0 and len(val) > 0)
    return MaterializeResult(
        metadata={
            "val_loss": MetadataValue.float(float(metrics["val_loss"])),
            "perplexity": MetadataValue.float(float(metrics["perplexity"])),
            "label_accuracy": MetadataValue.float(float(acc)),
            "majority_baseline_accuracy": MetadataValue.float(float(base)),
            "val_examples": MetadataValue.int(len(val)),
            "model_uri": str(ckpt.get("model_uri", "")),
            "majority_label": str(metrics["majority_label"]),
            "per_label": MetadataValue.json(metrics["per_label"]),
            "per_label_recall_plot": png_markdown(bar_plot(per_label, "recall per label"), "per-label recall"),
        },
        check_results=[
            AssetCheckResult(check_name="eval_sane", passed=sane, metadata={"val_loss": float(metrics["val_loss"])}),
            AssetCheckResult(
                check_name="beats_majority_baseline",
                passed=bool(acc >= base),
                severity=AssetCheckSeverity.WARN,
                metadata={"label_accuracy": float(acc), "baseline": float(base)},
            ),
        ],
    )
