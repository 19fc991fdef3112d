"""Device smoke check for a GPU machine (not collected by pytest): the training loop, scoring and
model-directory reload run on CUDA and agree with themselves.

    python -m llama_platform_tests.training.gpu_smoke [--steps 120] [--out result.json]

Needs only torch, transformers, peft, tokenizers and pandas (no MLflow, no Dagster), so it runs
in a bare GPU image. Exits non-zero if CUDA is missing or a check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from llama_platform.training.batching import encode_example
from llama_platform.training.config import TrainConfig
from llama_platform.training.evaluate import evaluate_model
from llama_platform.training.inference import META_FILE, TriageModel
from llama_platform.training.model import apply_lora, build_model, pick_device, tiny_llama4_config
from llama_platform.training.prompts import LABELS, PROMPT_FORMAT_VERSION
from llama_platform.training.tokenizer import train_tokenizer
from llama_platform.training.train import fit, seed_everything
from llama_platform_tests.training.synthetic import synthetic_training_set


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

    df = synthetic_training_set(200)
    train_df, test_df = df[df.split == "train"], df[df.split == "test"]
    config = TrainConfig(training_set_path="-", output_dir="-", mlflow_tracking_uri="sqlite:///unused.db",
                         max_steps=args.steps)
    seed_everything(config.seed)
    tokenizer = train_tokenizer(train_df.prompt.tolist() + train_df.completion.tolist(), config.vocab_size)
    base = build_model(tiny_llama4_config(len(tokenizer)), seed=config.seed)
    workdir = Path(tempfile.mkdtemp())
    base.save_pretrained(str(workdir / "base"))
    model = apply_lora(base).to(device)
    examples = [encode_example(tokenizer, p, c, config.seq_len) for p, c in zip(train_df.prompt, train_df.completion)]

    losses, tokens, seconds = fit(model, examples, config, tokenizer.pad_token_id, device)
    in_memory = TriageModel(model=model, tokenizer=tokenizer, seq_len=config.seq_len)
    metrics = evaluate_model(in_memory, test_df, majority_label="bug")
    preds = in_memory.predict(test_df.prompt.tolist())

    model.save_pretrained(str(workdir / "adapter"), save_embedding_layers=False)
    tokenizer.save_pretrained(str(workdir / "tokenizer"))
    (workdir / META_FILE).write_text(json.dumps(
        {"labels": list(LABELS), "prompt_format_version": PROMPT_FORMAT_VERSION, "seq_len": config.seq_len}
    ))
    t0 = time.monotonic()
    reloaded = TriageModel.load(workdir, device=device)
    again = reloaded.predict(test_df.prompt.tolist())
    predict_seconds = time.monotonic() - t0
    max_score_diff = max(
        abs(a["scores"][label] - b["scores"][label]) for a, b in zip(preds, again) for label in LABELS
    )
    result = {
        "device": str(device),
        "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
        "torch": torch.__version__,
        "steps": len(losses),
        "first10_loss": sum(losses[:10]) / 10,
        "last10_loss": sum(losses[-10:]) / 10,
        "train_seconds": round(seconds, 2),
        "tokens_per_second": round(tokens / seconds),
        "test_label_accuracy": metrics["label_accuracy"],
        "test_loss": metrics["val_loss"],
        "reloaded_device": str(reloaded.device),
        "reload_max_score_diff": max_score_diff,
        "reload_and_predict_seconds": round(predict_seconds, 2),
    }
    checks = {
        "loss_fell": result["last10_loss"] < 0.5 * result["first10_loss"],
        "learned_labels": result["test_label_accuracy"] >= 0.8,
        "reload_matches": max_score_diff < 1e-3,  # merged LoRA vs unmerged: float rounding only
        "reloaded_on_device": result["reloaded_device"].startswith(device.type),
    }
    result["checks"] = checks
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
