"""Stage 6b: the classical baseline the fine-tuned model must beat (H2O AutoML, time-boxed)."""

import pandas as pd
from dagster import AssetExecutionContext, MetadataValue, Output, asset

from llama_platform.assets.automation import follow_upstream
from llama_platform.assets.common import code_version_of
from llama_platform.evaluation.baseline import ablation_variants, train_h2o_baseline, usable_feature_columns
from llama_platform.resources.evaluation import EvaluationResource
from llama_platform.training.prompts import LABELS

SCORE_PREFIX = "score__"
ABLATION_PREFIX = "ablation:"  # columns "ablation:<variant>__score__<label>"


def baseline_scores(frame: pd.DataFrame, issue_ids: list[str]) -> pd.DataFrame:
    """The baseline's label scores for `issue_ids`, in that order and in LABELS column order."""
    indexed = frame.set_index("issue_id")
    missing = [i for i in issue_ids if i not in indexed.index]
    if missing:
        raise ValueError(f"baseline_model has no scores for {len(missing)} test issues, e.g. {missing[:3]}: rematerialise it")
    return indexed.loc[issue_ids, [SCORE_PREFIX + l for l in LABELS]]


def ablation_scores(frame: pd.DataFrame, issue_ids: list[str]) -> dict[str, pd.DataFrame]:
    """variant -> its label scores for `issue_ids` (empty when the ablation was not run)."""
    indexed = frame.set_index("issue_id").loc[issue_ids]
    variants = sorted({c[len(ABLATION_PREFIX):].split("__score__")[0] for c in frame.columns if c.startswith(ABLATION_PREFIX)})
    return {v: indexed[[f"{ABLATION_PREFIX}{v}__score__{l}" for l in LABELS]] for v in variants}


@asset(
    group_name="training",
    automation_condition=follow_upstream,
    io_manager_key="parquet_io_manager",
    description="H2O AutoML on TF-IDF (char n-grams + SVD) of the prompt text and the filing-time Feast features, "
    "trained on the train split, ranked on val; its label scores on the test split.",
    kinds={"h2o", "scikitlearn"},
    code_version=code_version_of("assets/baseline.py", "evaluation/baseline.py"),
)
def baseline_model(
    context: AssetExecutionContext, evaluation: EvaluationResource, training_set: pd.DataFrame
) -> Output[pd.DataFrame]:
    split = {s: training_set[training_set["split"] == s] for s in ("train", "val", "test")}
    empty = [s for s, df in split.items() if df.empty]
    if empty:
        raise ValueError(f"training_set has no rows in split(s) {empty}: the baseline needs train, val and test")
    features = usable_feature_columns(training_set)
    context.log.info(f"H2O AutoML for {evaluation.baseline_max_runtime_secs}s on {len(split['train'])} rows, features {features}")
    # The prompt is the text the fine-tuned model reads (title, body, repo), so both see the same input.
    frames = {s: df.assign(text=df["prompt"]) for s, df in split.items()}
    result = train_h2o_baseline(
        frames["train"], frames["val"], frames["test"], LABELS, features,
        max_runtime_secs=evaluation.baseline_max_runtime_secs, seed=evaluation.seed,
        nthreads=evaluation.h2o_nthreads, max_mem_size=evaluation.h2o_max_mem_size,
        variants={k: v for k, v in ablation_variants(features).items() if k != "all"} if evaluation.baseline_ablation else None,
    )
    out = pd.DataFrame({"issue_id": split["test"]["issue_id"].to_numpy()})
    for j, label in enumerate(LABELS):
        out[SCORE_PREFIX + label] = result.scores[:, j]
    for variant, scores in result.variant_scores.items():
        for j, label in enumerate(LABELS):
            out[f"{ABLATION_PREFIX}{variant}__score__{label}"] = scores[:, j]
    board = result.leaderboard[[c for c in ("model_id", "logloss", "mean_per_class_error") if c in result.leaderboard]]
    return Output(
        out,
        metadata={
            "leader": result.leader,
            "leaderboard": MetadataValue.md(board.head(5).to_markdown(index=False)),
            "feature_columns": MetadataValue.json(result.feature_columns),
            "train_rows": MetadataValue.int(len(split["train"])),
            "test_rows": MetadataValue.int(len(out)),
            "seconds": MetadataValue.float(round(result.seconds, 1)),
            "ablation_variants": MetadataValue.json(sorted(result.variant_scores)),
            "target": "primary label (one multiclass model; class probabilities are the label scores)",
        },
    )
