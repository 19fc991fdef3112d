"""Resumable and safe: checkpoints in the object store, SIGTERM saves and stops, bad losses stop.

transformers' Trainer writes a complete checkpoint (adapter, optimizer, scheduler, RNG states,
trainer_state with the step, hence the data position) into a local folder; these callbacks copy
each one to the checkpoint URI (folder or s3:// prefix) and mark it complete, so a pod that is
preempted or evicted loses at most `save_every` steps and a re-run of the same config resumes.
"""

from __future__ import annotations

import json
import math
import re
import signal
from pathlib import Path
from typing import Callable

from transformers import TrainerCallback

from llama_platform.training import storage

COMPLETE_MARKER = "checkpoint-complete.json"  # written last: a checkpoint without it is partial
LOSSES_FILE = "step_losses.json"  # per-step losses so far (the run's loss curve survives a resume)
RUN_FILE = "run.json"  # the MLflow run a resumed job continues
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


class TrainingDiverged(FloatingPointError):
    """The loss became NaN/inf or ran away: the run stops instead of training on garbage."""


class Preempted(RuntimeError):
    """SIGTERM arrived (node drain, spot preemption, run cancel): a checkpoint was saved."""

    exit_code = 143  # 128 + SIGTERM, what an orchestrator expects; the Job's retry resumes


def latest_checkpoint(uri: str) -> str | None:
    """Name of the newest complete checkpoint (e.g. "checkpoint-40") under `uri`, or None."""
    steps = []
    for rel in storage.list_files(uri) if storage.exists(uri) else []:
        parts = rel.split("/")
        match = _CHECKPOINT.match(parts[0])
        if match and len(parts) == 2 and parts[1] == COMPLETE_MARKER:
            steps.append(int(match.group(1)))
    return f"checkpoint-{max(steps)}" if steps else None


def fetch_checkpoint(uri: str, name: str, local_root: Path) -> Path:
    """A local folder holding checkpoint `name` (downloaded when `uri` is remote; the marker
    comes with it, so a folder that has it is complete and not fetched again)."""
    if not storage.is_remote(uri):
        return storage.local_path(uri) / name
    local = local_root / name
    if not (local / COMPLETE_MARKER).is_file():
        storage.download_dir(storage.join(uri, name), local)
    return local


def read_run_file(uri: str) -> dict:
    path = storage.join(uri, RUN_FILE)
    return json.loads(storage.read_text(path)) if storage.exists(path) else {}


def write_run_file(uri: str, data: dict) -> None:
    storage.write_text(storage.join(uri, RUN_FILE), json.dumps(data, indent=2))


class StepLosses:
    """Each optimizer step's loss (the mean over its micro-batches) and real-token count."""

    def __init__(self, previous: list[float] | None = None):
        self.losses: list[float] = list(previous or [])
        self.pending_loss = 0.0
        self.pending_tokens = 0
        self.pending_pairs = 0
        self.total_tokens = 0  # real tokens this process trained on

    def add_micro_batch(self, loss: float, tokens: int, attention_pairs: int, step: int) -> None:
        if not math.isfinite(loss):
            raise TrainingDiverged(f"loss became {loss} at step {step}; stopped before the optimizer step "
                                   "(lower learning_rate, check the data, or use bf16 instead of fp16)")
        self.pending_loss += loss
        self.pending_tokens += tokens
        self.pending_pairs += attention_pairs

    def close_step(self) -> tuple[float, int, int]:
        loss, tokens, pairs = self.pending_loss, self.pending_tokens, self.pending_pairs
        self.losses.append(loss)
        self.total_tokens += tokens
        self.pending_loss, self.pending_tokens, self.pending_pairs = 0.0, 0, 0
        return loss, tokens, pairs


def check_divergence(losses: list[float], factor: float, window: int = 5) -> None:
    """Raise TrainingDiverged when the mean of the last `window` losses exceeds `factor` x the
    first step's loss (the loss before any update: where the model started)."""
    if len(losses) <= window:
        return
    start = losses[0]
    recent = sum(losses[-window:]) / window
    if recent > factor * start:
        raise TrainingDiverged(
            f"loss diverged at step {len(losses)}: mean of the last {window} steps {recent:.4g} > "
            f"{factor} x the first step's {start:.4g} (lower learning_rate or raise divergence_factor)"
        )


class GuardAndStore(TrainerCallback):
    """Closes each step (divergence check), reacts to SIGTERM, ships checkpoints to the store."""

    def __init__(self, recorder: StepLosses, divergence_factor: float, checkpoint_uri: str,
                 is_main: bool, on_step: Callable[[int, float, int, int], None], is_local_main: bool | None = None,
                 barrier: Callable[[], None] = lambda: None, any_rank: Callable[[bool], bool] = lambda flag: flag):
        self.recorder = recorder
        self.divergence_factor = divergence_factor
        self.checkpoint_uri = checkpoint_uri
        self.is_main = is_main
        self.is_local_main = is_main if is_local_main is None else is_local_main
        self.barrier = barrier
        self.any_rank = any_rank  # ranks must stop at the same step, or their collectives hang
        self.on_step = on_step
        self.stop_requested = False

    def request_stop(self, signum, frame) -> None:  # a signal handler: only set a flag
        self.stop_requested = True

    def on_step_end(self, args, state, control, **kwargs):
        loss, tokens, pairs = self.recorder.close_step()
        check_divergence(self.recorder.losses, self.divergence_factor)
        self.on_step(state.global_step, loss, tokens, pairs)
        if self.any_rank(self.stop_requested):
            self.stop_requested = True
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_save(self, args, state, control, **kwargs):
        # Each node's first process uploads what its ranks wrote (ZeRO shards live on every
        # node's disk); after all have, rank 0 marks the checkpoint complete.
        name = f"checkpoint-{state.global_step}"
        local = Path(args.output_dir) / name
        target = storage.join(self.checkpoint_uri, name)
        if self.is_main:
            (local / LOSSES_FILE).write_text(json.dumps(self.recorder.losses))
        if self.is_local_main:
            storage.upload_dir(local, target)
        self.barrier()
        if self.is_main:
            storage.write_text(storage.join(target, COMPLETE_MARKER), json.dumps({"step": state.global_step}))
        return control


class sigterm_saves:
    """Context manager: while active, SIGTERM asks the callback to save and stop (main thread only)."""

    def __init__(self, callback: GuardAndStore):
        self.callback = callback
        self.previous = None

    def __enter__(self):
        try:
            self.previous = signal.signal(signal.SIGTERM, self.callback.request_stop)
        except ValueError:  # not the main thread (e.g. a test runner thread): no handler
            self.previous = None
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        return False
