"""The one config a training run reads (a JSON file: the container entrypoint's only input)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit


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
        return cls.from_json(Path(path).read_text())


def _without_credentials(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))
