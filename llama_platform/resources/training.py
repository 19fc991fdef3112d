"""How and where fine-tuning runs. Local profile: a subprocess on CPU, launched through Dagster Pipes;
k8s profile: a GPU pod or a TrainJob (the `kubernetes` resource says which and on what hardware)."""

from __future__ import annotations

from typing import Any, Literal, Optional

from dagster import ConfigurableResource


class TrainingResource(ConfigurableResource):
    work_dir: str
    max_steps: int = 120
    batch_size: int = 16
    learning_rate: float = 3e-3
    seq_len: int = 320
    seed: int = 0
    launcher: Literal["subprocess", "k8s"] = "subprocess"
    # None: the tiny random-init model. Else a Hugging Face layout folder or s3:// prefix
    # (`llama-platform models import`), with the hash it printed.
    model_path: Optional[str] = None
    model_hash: Optional[str] = None
    method: Literal["lora", "qlora", "lora_zero3"] = "lora"  # TrainConfig.method
    save_every: int = 50

    def recipe_fields(self) -> dict[str, Any]:
        """TrainConfig fields beyond the loop's sizes (only those set, so defaults stay in one place)."""
        fields = {"model_path": self.model_path, "model_hash": self.model_hash, "method": self.method,
                  "save_every": self.save_every}
        return {k: v for k, v in fields.items() if v is not None}
