"""The training entrypoint: LoRA fine-tune of a tiny random-init Llama 4 to triage issues.

    python -m llama_platform.training.train --config CONFIG.json

Reads one TrainConfig, trains, evaluates on the val split, writes `output_dir/model/` (base,
adapter, tokenizer, triage.json) and `output_dir/result.json`, logs the run to MLflow and
registers a model version. Under Dagster Pipes (launched by PipesSubprocessClient or
PipesK8sClient) progress goes to the Dagster run log and the result is reported as the asset's
materialization metadata; standalone it shows a tqdm bar. Runs on CUDA when present, else CPU.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch
from tqdm import tqdm
from transformers import get_cosine_schedule_with_warmup

from llama_platform.training.batching import Encoded, collate, encode_example
from llama_platform.training.config import TrainConfig
from llama_platform.training.evaluate import check_training_frame, evaluate_model
from llama_platform.training.inference import (
    ADAPTER_DIR,
    BASE_DIR,
    DEFAULT_THRESHOLD,
    META_FILE,
    TOKENIZER_DIR,
    TriageModel,
)
from llama_platform.training.model import apply_lora, build_model, moe_layer_indices, pick_device, tiny_llama4_config
from llama_platform.training.prompts import LABELS, PROMPT_FORMAT_VERSION
from llama_platform.training.tokenizer import train_tokenizer

LOSS_CURVE_FILE = "loss_curve.png"
RESULT_FILE = "result.json"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)  # also seeds CUDA


def load_training_set(path: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The train and val splits; a broken contract or an empty train split is an error."""
    df = pd.read_parquet(path)
    check_training_frame(df)
    train_df, val_df = df[df["split"] == "train"], df[df["split"] == "val"]
    if train_df.empty:
        raise ValueError(f"{path} has no rows with split == 'train'")
    if val_df.empty:
        raise ValueError(f"{path} has no rows with split == 'val'")
    return train_df.reset_index(drop=True), val_df.reset_index(drop=True)


def batches(n: int, batch_size: int, seed: int):
    """Endless shuffled index batches, a new permutation each epoch (reproducible by seed)."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(n, generator=generator).tolist()
        for start in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            yield order[start : start + batch_size]


def set_up_mlflow(config: TrainConfig) -> str:
    """Point MLflow at the tracking store and select (or create) the experiment; returns its id."""
    import mlflow

    mlflow.set_tracking_uri(config.mlflow_tracking_uri)
    experiment = mlflow.get_experiment_by_name(config.mlflow_experiment)
    if experiment is not None:
        experiment_id = experiment.experiment_id
    else:
        location = config.mlflow_artifact_location
        if location is None and config.mlflow_tracking_uri.startswith("sqlite:///"):
            # MLflow's default would be ./mlruns under whatever the working directory is.
            db_path = Path(config.mlflow_tracking_uri.removeprefix("sqlite:///")).resolve()
            location = (db_path.parent / "mlartifacts").as_uri()
        try:
            experiment_id = mlflow.create_experiment(config.mlflow_experiment, artifact_location=location)
        except mlflow.exceptions.MlflowException:
            # Another run created it between our lookup and create.
            experiment = mlflow.get_experiment_by_name(config.mlflow_experiment)
            if experiment is None:
                raise
            experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def plot_loss_curve(losses: list[float], val_loss: float, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # headless: training pods have no display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(range(1, len(losses) + 1), losses, label="train loss (per step)", linewidth=1)
    ax.axhline(val_loss, color="tab:orange", linestyle="--", label=f"val loss {val_loss:.3f}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (completion tokens)")
    ax.set_title("LoRA fine-tune of tiny Llama 4")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def fit(
    model: torch.nn.Module,
    examples: list[Encoded],
    config: TrainConfig,
    pad_token_id: int,
    device: torch.device,
    on_step: Callable[[int, list[float]], None] = lambda step, losses: None,
) -> tuple[list[float], int, float]:
    """The training loop: AdamW with warmup + cosine decay, loss on completion tokens only.

    Returns the per-step losses, the number of real (unpadded) tokens seen, and the seconds taken.
    """
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=config.learning_rate, weight_decay=config.weight_decay
    )
    scheduler = get_cosine_schedule_with_warmup(optimizer, config.warmup_steps, config.max_steps)
    losses: list[float] = []
    tokens = 0
    model.train()
    started = time.monotonic()
    for step, idx in enumerate(batches(len(examples), config.batch_size, config.seed), start=1):
        batch = {k: v.to(device) for k, v in collate([examples[i] for i in idx], pad_token_id).items()}
        loss = model(**batch).loss  # transformers shifts labels; IGNORE_INDEX masks the prompt
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        losses.append(loss.item())
        tokens += int(batch["attention_mask"].sum())
        on_step(step, losses)
        if step >= config.max_steps:
            break
    return losses, tokens, time.monotonic() - started


def train(config: TrainConfig, log: Callable[[str], None] = print, show_progress: bool = True) -> dict[str, Any]:
    """Run one training job; returns the result facts (also written to output_dir/result.json)."""
    import mlflow  # here, not at the top: fit() and the rest stay importable without MLflow

    from llama_platform.training.mlflow_model import MODEL_DIR_ARTIFACT, PYFUNC_ENTRY

    started = time.monotonic()
    seed_everything(config.seed)
    device = pick_device()
    if device.type == "cpu" and config.cpu_threads:
        torch.set_num_threads(config.cpu_threads)
    output_dir = Path(config.output_dir)
    model_dir = output_dir / "model"
    model_dir.mkdir(parents=True, exist_ok=True)

    train_df, val_df = load_training_set(config.training_set_path)
    log(f"training set: {len(train_df)} train rows, {len(val_df)} val rows; device {device}")

    tokenizer = train_tokenizer(
        pd.concat([train_df["prompt"], train_df["completion"]]).tolist(), vocab_size=config.vocab_size
    )
    tokenizer.save_pretrained(str(model_dir / TOKENIZER_DIR))
    encoded = [
        encode_example(tokenizer, p, c, config.seq_len)
        for p, c in zip(train_df["prompt"], train_df["completion"])
    ]

    model_config = tiny_llama4_config(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        num_layers=config.num_layers,
        num_experts=config.num_experts,
        max_position_embeddings=max(512, config.seq_len),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    base = build_model(model_config, seed=config.seed)
    # The base is random, so it must ship with the adapter; saved before LoRA wraps it.
    base.save_pretrained(str(model_dir / BASE_DIR))
    model = apply_lora(base, r=config.lora_r, alpha=config.lora_alpha, dropout=config.lora_dropout).to(device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    log(f"model: {total:,} params, {trainable:,} trainable (LoRA r={config.lora_r}), "
        f"MoE layers {moe_layer_indices(model)}")

    set_up_mlflow(config)
    with mlflow.start_run(run_name=config.run_name, tags=config.tags or None) as run:
        mlflow.log_params({k: v for k, v in config.public_dict().items() if k != "tags"})
        mlflow.log_params({"trainable_params": trainable, "total_params": total, "device": str(device),
                           "prompt_format_version": PROMPT_FORMAT_VERSION})

        progress = tqdm(total=config.max_steps, disable=not show_progress, desc="train", file=sys.stdout,
                        mininterval=2.0)

        def on_step(step: int, losses: list[float]) -> None:
            mlflow.log_metric("train_loss", losses[-1], step=step)
            progress.update(1)
            progress.set_postfix(loss=f"{losses[-1]:.3f}")
            if step % config.log_every == 0 or step == config.max_steps:
                recent = losses[-config.log_every:]
                log(f"step {step}/{config.max_steps} loss {sum(recent) / len(recent):.4f}")

        losses, tokens, train_seconds = fit(model, encoded, config, tokenizer.pad_token_id, device, on_step)
        progress.close()

        triage = TriageModel(model=model, tokenizer=tokenizer, seq_len=config.seq_len,
                             batch_size=config.eval_batch_size)
        majority = train_df["label"].value_counts().idxmax()
        val_metrics = evaluate_model(triage, val_df, majority_label=majority)
        log(f"val loss {val_metrics['val_loss']:.4f}, label accuracy {val_metrics['label_accuracy']:.3f} "
            f"(majority baseline {val_metrics['majority_baseline_accuracy']:.3f})")

        # The base (with its output head) is saved separately, so only LoRA weights go here.
        model.save_pretrained(str(model_dir / ADAPTER_DIR), save_embedding_layers=False)
        (model_dir / META_FILE).write_text(json.dumps({
            "labels": list(LABELS),
            "prompt_format_version": PROMPT_FORMAT_VERSION,
            "seq_len": config.seq_len,
            "threshold": DEFAULT_THRESHOLD,
            "train_majority_label": majority,
            "training_config": config.public_dict(),
        }, indent=2))

        head = losses[: min(10, len(losses))]
        tail = losses[-min(10, len(losses)):]
        metrics = {
            "val_loss": val_metrics["val_loss"],
            "val_perplexity": val_metrics["perplexity"],
            "val_label_accuracy": val_metrics["label_accuracy"],
            "val_majority_baseline_accuracy": val_metrics["majority_baseline_accuracy"],
            "first_loss": sum(head) / len(head),
            "final_loss": sum(tail) / len(tail),
            "tokens_per_second": tokens / train_seconds,
        }
        mlflow.log_metrics(metrics)
        curve = plot_loss_curve(losses, val_metrics["val_loss"], output_dir / LOSS_CURVE_FILE)
        mlflow.log_artifact(str(curve), artifact_path="plots")
        mlflow.log_artifacts(str(model_dir), artifact_path="model_dir")

        info = mlflow.pyfunc.log_model(
            name="triage",
            python_model=str(PYFUNC_ENTRY),
            artifacts={MODEL_DIR_ARTIFACT: str(model_dir)},
            registered_model_name=config.registered_model_name,
            # Explicit requirements: inferring them would load the model in a subprocess (slow).
            pip_requirements=_pip_requirements(),
        )
        version = info.registered_model_version
        model_uri = (
            f"models:/{config.registered_model_name}/{version}" if config.registered_model_name else info.model_uri
        )
        result = {
            **metrics,
            "steps": len(losses),
            "tokens": tokens,
            "train_seconds": round(train_seconds, 2),
            "total_seconds": round(time.monotonic() - started, 2),
            "trainable_params": trainable,
            "total_params": total,
            "device": str(device),
            "mlflow_run_id": run.info.run_id,
            "mlflow_experiment_id": run.info.experiment_id,
            "model_name": config.registered_model_name,
            "model_version": int(version) if version is not None else None,
            "model_uri": model_uri,
            "logged_model_uri": info.model_uri,
            "model_dir": str(model_dir.resolve()),
            "loss_curve_path": str(curve.resolve()),
        }
    (output_dir / RESULT_FILE).write_text(json.dumps(result, indent=2))
    return result


def _pip_requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for name in ("torch", "transformers", "peft", "tokenizers", "pandas", "mlflow", "llama-platform"):
        try:
            reqs.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            reqs.append(name)
    return reqs


def _pipes_metadata(result: dict[str, Any]) -> dict[str, Any]:
    """Materialization metadata with explicit types where Dagster would otherwise guess."""
    typed = {
        "mlflow_run_id": "text",
        "model_uri": "text",
        "logged_model_uri": "text",
        "loss_curve_path": "path",
        "model_dir": "path",
    }
    return {
        key: ({"raw_value": value, "type": typed[key]} if key in typed else value)
        for key, value in result.items()
        if value is not None
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="LoRA fine-tune of a tiny Llama 4 issue-triage model")
    parser.add_argument("--config", required=True, help="TrainConfig JSON file")
    args = parser.parse_args(argv)

    from dagster_pipes import PipesEnvVarParamsLoader, open_dagster_pipes  # the only Dagster import

    # Only under Dagster Pipes: open_dagster_pipes() would otherwise warn and hand back a mock.
    if PipesEnvVarParamsLoader().is_dagster_pipes_process():
        # The config is read inside the pipes session so that a bad config reaches Dagster too.
        with open_dagster_pipes() as pipes:
            result = train(TrainConfig.load(args.config), log=pipes.log.info, show_progress=False)
            pipes.report_asset_materialization(metadata=_pipes_metadata(result))
    else:
        result = train(TrainConfig.load(args.config), log=lambda msg: tqdm.write(msg, file=sys.stdout))
    print(json.dumps({k: result[k] for k in ("first_loss", "final_loss", "val_loss", "model_uri")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
