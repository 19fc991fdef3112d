"""How and where fine-tuning runs. Local profile: a subprocess on CPU, launched through Dagster Pipes."""

from __future__ import annotations

from dagster import ConfigurableResource


class TrainingResource(ConfigurableResource):
    work_dir: str
    max_steps: int = 120
    batch_size: int = 16
    learning_rate: float = 3e-3
    seq_len: int = 320
    seed: int = 0
