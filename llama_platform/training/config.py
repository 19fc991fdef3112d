"""The one config a training run reads (a JSON file, local or s3://: the container entrypoint's only input).

Defaults train the local profile's tiny random-init model on CPU in about a minute; a real run
sets `model_path` (a Hugging Face layout folder or s3:// prefix) and `method`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit


METHODS = ("lora", "qlora", "lora_zero3")


@dataclass
class TrainConfig:
    training_set_path: str
    output_dir: str
    mlflow_tracking_uri: str
    mlflow_experiment: str = "llama-platform"
    # Where a *new* experiment keeps artifacts. None: next to a sqlite tracking db
    # (…/mlartifacts), or the tracking server's default; never the working directory.
    mlflow_artifact_location: str | None = None
    # None: log the model to the run but do not create a registry version.
    registered_model_name: str | None = "llama4-issue-triage"
    run_name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    # Defaults train the tiny model in about a minute on 2 CPU cores.
    max_steps: int = 120
    batch_size: int = 16
    learning_rate: float = 4e-3
    warmup_steps: int = 10
    weight_decay: float = 0.0
    seq_len: int = 256
    seed: int = 0
    vocab_size: int = 2000
    hidden_size: int = 64
    num_layers: int = 4
    num_experts: int = 4
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    eval_batch_size: int = 32
    # CPU only. The tiny model's ops are too small to gain from intra-op threads, and on a busy
    # machine OpenMP spin-waiting made 2 threads ~10x slower than 1 (measured). None: torch default.
    cpu_threads: int | None = 1
    log_every: int = 10

    # --- the base model -------------------------------------------------------------------
    # None: the tiny random-init Llama 4 built from the fields above (labelled "tiny-random-init"
    # in MLflow and triage.json). Else a folder or s3:// prefix in Hugging Face layout holding a
    # Llama4ForCausalLM or Llama4ForConditionalGeneration checkpoint and its tokenizer.
    model_path: str | None = None
    # sha256 model hash from `llama-platform models import`; loading refuses other weights.
    model_hash: str | None = None
    # "lora": bf16 LoRA on one device (or DDP); "qlora": 4-bit nf4 base on one GPU (bitsandbytes);
    # "lora_zero3": bf16 LoRA with the base sharded over all GPUs/nodes by DeepSpeed ZeRO-3.
    method: str = "lora"
    # LoRA targets (never all-linear: the MoE router returns a tuple). Attention q/k/v/o always.
    lora_mlp: bool = True  # dense MLPs and each MoE layer's shared expert
    lora_routed_experts: bool = False  # the fused routed experts, via peft target_parameters
    # None: only for the tiny random-init model (its random head needs an update; a pretrained one does not)
    lora_lm_head: bool | None = None
    # "auto": bf16 on CUDA, fp32 on CPU.
    precision: str = "auto"
    gradient_checkpointing: bool = False
    # Pack several issues into one row of `pack_len` tokens, document-masked (packing.py), one
    # row per step and device; False: dynamic padding, batch_size issues per step (for comparison).
    packing: bool = True
    pack_len: int | None = None  # None: batch_size x the mean issue length (about batch_size issues a row)
    # "random": rows of randomly mixed issues (train.pack_in_random_order); "best_fit": fullest
    # rows (packing.pack_examples), whose rows group issues of similar length.
    pack_order: str = "random"
    # Run only each token's routed expert(s) (moe.py; transformers' Llama 4 MoE runs all of them).
    # Not available under QLoRA: bitsandbytes needs the experts as separate Linear layers.
    routed_moe: bool = True
    gradient_accumulation_steps: int = 1

    # --- resumable and safe ---------------------------------------------------------------
    # Where checkpoints go (folder or s3:// prefix). None: output_dir/checkpoints.
    checkpoint_dir: str | None = None
    save_every: int = 50
    keep_checkpoints: int = 2
    # Stop when the mean of the last 5 losses exceeds this times the first step's loss.
    divergence_factor: float = 2.0

    # --- lineage, logged to MLflow --------------------------------------------------------
    snapshot_version: str | None = None
    feature_views: list[str] = field(default_factory=list)
    mlflow_system_metrics: bool = True
    system_metrics_every_s: float = 10.0  # MLflow's CPU/GPU/memory sampling interval
    registered_model_alias: str | None = "candidate"

    def __post_init__(self) -> None:
        problems = []
        if self.max_steps < 1:
            problems.append("max_steps must be >= 1")
        if self.batch_size < 1:
            problems.append("batch_size must be >= 1")
        if self.seq_len < 32:
            problems.append("seq_len must be >= 32 (the prompt cue and a completion must fit)")
        if self.learning_rate <= 0:
            problems.append("learning_rate must be > 0")
        if self.vocab_size < 300:
            problems.append("vocab_size must be >= 300 (256 bytes + special tokens + merges)")
        if self.method not in METHODS:
            problems.append(f"method must be one of {METHODS}")
        if self.method == "qlora" and self.model_path is None:
            problems.append("method 'qlora' needs a pretrained model_path (the tiny model is not quantized)")
        if self.precision not in ("auto", "bf16", "fp32"):
            problems.append("precision must be auto, bf16 or fp32")
        if self.save_every < 1:
            problems.append("save_every must be >= 1")
        if self.gradient_accumulation_steps < 1:
            problems.append("gradient_accumulation_steps must be >= 1")
        if self.pack_len is not None and self.pack_len < self.seq_len:
            problems.append("pack_len must be >= seq_len (one issue must fit a packed row)")
        if self.pack_order not in ("random", "best_fit"):
            problems.append("pack_order must be random or best_fit")
        if self.divergence_factor <= 1:
            problems.append("divergence_factor must be > 1")
        if not self.mlflow_tracking_uri:
            problems.append("mlflow_tracking_uri is required (e.g. sqlite:///path/mlflow.db)")
        elif self.mlflow_tracking_uri.startswith("file:"):
            problems.append("mlflow_tracking_uri must not be a file: URI (MLflow 3.17 refuses it); use sqlite:///…")
        if problems:
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def public_dict(self) -> dict[str, Any]:
        """to_dict() safe to log or ship with a model: credentials in the tracking URI are dropped."""
        data = self.to_dict()
        data["mlflow_tracking_uri"] = _without_credentials(self.mlflow_tracking_uri)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig keys: {unknown}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        return cls.from_dict(json.loads(text))

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        """From a local file or an object-store URI (s3://bucket/key)."""
        from llama_platform.training.storage import read_text

        return cls.from_json(read_text(str(path)))

    @property
    def checkpoint_uri(self) -> str:
        return self.checkpoint_dir or str(Path(self.output_dir) / "checkpoints")

    def effective_pack_len(self, mean_example_tokens: float) -> int:
        return self.pack_len or max(self.seq_len, round(self.batch_size * mean_example_tokens))


def _without_credentials(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))
