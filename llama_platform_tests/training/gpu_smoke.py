"""Device smoke check for a GPU machine (not collected by pytest): the training recipe, scoring and
model-directory reload run on CUDA and agree with themselves.

    python -m llama_platform_tests.training.gpu_smoke [--steps 120] [--out result.json]

Runs the real entrypoint's train() (bf16 on CUDA, MLflow in a temporary sqlite db) on the synthetic
training set. Exits non-zero if CUDA is missing or a check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from llama_platform.training.config import TrainConfig
from llama_platform.training.evaluate import evaluate
from llama_platform.training.inference import TriageModel
from llama_platform.training.model import pick_device
from llama_platform.training.prompts import LABELS
from llama_platform.training.train import train
from llama_platform_tests.training.synthetic import synthetic_training_set, write_synthetic_training_set


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--allow-cpu", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args()
    device = pick_device()
    if device.type != "cuda" and not args.allow_cpu:
        print("no CUDA device", file=sys.stderr)
        return 2

    workdir = Path(tempfile.mkdtemp())
    data = write_synthetic_training_set(workdir / "training_set.parquet", n=200)
    test_df = synthetic_training_set(200)
    test_df = test_df[test_df.split == "test"]
    config = TrainConfig(training_set_path=str(data), output_dir=str(workdir / "out"),
                         mlflow_tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}", max_steps=args.steps,
                         registered_model_name=None)
    result = train(config, log=lambda m: None, show_progress=False)
    model_dir = Path(result["model_dir"])
    metrics = evaluate(model_dir, test_df)
    t0 = time.monotonic()
    reloaded = TriageModel.load(model_dir, device=device)
    again = reloaded.predict(test_df.prompt.tolist())
    predict_seconds = time.monotonic() - t0
    cpu = TriageModel.load(model_dir, device="cpu").predict(test_df.prompt.tolist())
    max_score_diff = max(
        abs(a["scores"][label] - b["scores"][label]) for a, b in zip(cpu, again) for label in LABELS
    )
    out = {
        "device": str(device),
        "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
        "torch": torch.__version__,
        "steps": result["steps"],
        "first10_loss": result["first_loss"],
        "last10_loss": result["final_loss"],
        "train_seconds": result["train_seconds"],
        "tokens_per_second": round(result["tokens_per_second"]),
        "peak_gpu_memory_gb": result["peak_gpu_memory_gb"],
        "test_label_accuracy": metrics["label_accuracy"],
        "test_loss": metrics["val_loss"],
        "reloaded_device": str(reloaded.device),
        "gpu_vs_cpu_max_score_diff": max_score_diff,
        "reload_and_predict_seconds": round(predict_seconds, 2),
    }
    checks = {
        "loss_fell": out["last10_loss"] < 0.5 * out["first10_loss"],
        "learned_labels": out["test_label_accuracy"] >= 0.8,
        "gpu_matches_cpu": max_score_diff < 2e-2,  # the GPU trains and scores in bf16
        "reloaded_on_device": out["reloaded_device"].startswith(device.type),
    }
    out["checks"] = checks
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
