"""How and where fine-tuning runs. Local profile: a subprocess on CPU, launched through Dagster Pipes;
k8s profile: a GPU pod or a TrainJob (the `kubernetes` resource says which and on what hardware)."""

from __future__ import annotations

from typing import Literal

from dagster import ConfigurableResource


class TrainingResource(ConfigurableResource):
    work_dir: str
    max_steps: int = 120
    batch_size: int = 16
    learning_rate: float = 3e-3
    seq_len: int = 320
    seed: int = 0
    launcher: Literal["subprocess", "k8s"] = "subprocess"
