"""Held-out metrics of a triage model.

    python -m llama_platform.training.evaluate --model-dir D --data training_set.parquet --out metrics.json

`--data` is a training-set parquet; by default its "test" split is scored (`--split val` etc.).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import torch

from llama_platform.training.inference import TriageModel, perplexity
from llama_platform.training.prompts import LABELS

REQUIRED_COLUMNS = ("split", "prompt", "completion", "labels", "label")


def check_training_frame(df: pd.DataFrame) -> None:
    """Raise ValueError naming the problem rows if `df` breaks the training-set contract."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"training set is missing columns {missing}; has {list(df.columns)}")
    bad_label = ~df["label"].isin(LABELS)
    bad_split = ~df["split"].isin(["train", "val", "test"])
    empty = df["prompt"].fillna("").str.strip().eq("") | df["completion"].fillna("").str.strip().eq("")
    bad = bad_label | bad_split | empty
    if bad.any():
        ids = df.loc[bad, "issue_id"].head(5).tolist() if "issue_id" in df else df.index[bad][:5].tolist()
        raise ValueError(
            f"{int(bad.sum())} training-set rows are invalid (label not in {LABELS}: {int(bad_label.sum())}, "
            f"unknown split: {int(bad_split.sum())}, empty prompt/completion: {int(empty.sum())}); first: {ids}"
        )


def evaluate_model(
    model: TriageModel, eval_df: pd.DataFrame, majority_label: str | None = None
) -> dict:
    """Metrics of an already-loaded model on `eval_df` (rows in the training-set contract).

    `majority_label` is the most common *training* label; without it the eval set's own majority
    is used (an optimistic baseline, flagged in the output).
    """
    check_training_frame(eval_df)
    if eval_df.empty:
        raise ValueError("evaluation set is empty")
    prompts = eval_df["prompt"].tolist()
    loss = model.loss(prompts, eval_df["completion"].tolist())
    predictions = model.predict(prompts)
    top1 = [p["labels"][0] for p in predictions]
    truth = eval_df["label"].tolist()
    baseline_from = "train" if majority_label else "eval"
    majority_label = majority_label or Counter(truth).most_common(1)[0][0]
    predicted_counts = Counter(top1)
    true_counts = Counter(truth)
    return {
        "n_examples": len(eval_df),
        "val_loss": loss,
        "perplexity": perplexity(loss),
        "label_accuracy": sum(p == t for p, t in zip(top1, truth)) / len(truth),
        "majority_label": majority_label,
        "majority_baseline_from": baseline_from,
        "majority_baseline_accuracy": sum(t == majority_label for t in truth) / len(truth),
        "per_label": {
            label: {
                "support": true_counts[label],
                "predicted": predicted_counts[label],
                "correct": sum(p == t == label for p, t in zip(top1, truth)),
            }
            for label in model.labels
        },
    }


def evaluate(model_dir: str | Path, eval_df: pd.DataFrame, majority_label: str | None = None) -> dict:
    """Load the model in `model_dir` and score it on `eval_df`.

    The majority label defaults to the one recorded at training time in triage.json.
    """
    model = TriageModel.load(model_dir)
    if majority_label is None:
        meta = json.loads((Path(model_dir) / "triage.json").read_text())
        majority_label = meta.get("train_majority_label")
    return evaluate_model(model, eval_df, majority_label)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--data", required=True, help="training-set parquet")
    parser.add_argument("--split", default="test", help="which split to score (default: test)")
    parser.add_argument("--out", required=True, help="where to write metrics JSON")
    parser.add_argument("--cpu-threads", type=int, default=1,
                        help="torch CPU threads (1 suits the tiny model; 0 = torch default)")
    args = parser.parse_args(argv)
    if args.cpu_threads > 0:
        torch.set_num_threads(args.cpu_threads)
    df = pd.read_parquet(args.data)
    check_training_frame(df)
    eval_df = df[df["split"] == args.split]
    if eval_df.empty:
        print(f"no rows with split={args.split!r} in {args.data}", file=sys.stderr)
        return 2
    metrics = evaluate(args.model_dir, eval_df)
    metrics["split"] = args.split
    Path(args.out).write_text(json.dumps(metrics, indent=2))
    print(json.dumps({k: metrics[k] for k in ("val_loss", "label_accuracy", "majority_baseline_accuracy")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
