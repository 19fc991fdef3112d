"""Load a trained triage model directory and label issues with it.

Labels are chosen by scoring, not generation: for each prompt, the log-likelihood of each
candidate label's completion is computed and normalised over the candidates. A tiny model that
would ramble when sampling still ranks the four answers sensibly, and scores are probabilities.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from peft import PeftModel
from transformers import Llama4ForCausalLM, PreTrainedTokenizerFast

from llama_platform.training.batching import collate, completion_token_logprobs, encode_example
from llama_platform.training.model import pick_device
from llama_platform.training.prompts import LABELS, PROMPT_FORMAT_VERSION, format_completion
from llama_platform.training.tokenizer import load_tokenizer

# Layout of a model directory (written by train.py).
BASE_DIR, ADAPTER_DIR, TOKENIZER_DIR, META_FILE = "base", "adapter", "tokenizer", "triage.json"
DEFAULT_THRESHOLD = 0.3


@dataclass
class TriageModel:
    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerFast
    labels: tuple[str, ...] = LABELS
    seq_len: int = 256
    threshold: float = DEFAULT_THRESHOLD
    batch_size: int = 32

    @classmethod
    def load(cls, model_dir: str | Path, device: str | torch.device | None = None) -> "TriageModel":
        """Base + LoRA adapter (merged for speed) + tokenizer from a directory written by train.py."""
        model_dir = Path(model_dir)
        meta_path = model_dir / META_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path} not found: not a triage model directory")
        meta = json.loads(meta_path.read_text())
        if meta.get("prompt_format_version") != PROMPT_FORMAT_VERSION:
            raise ValueError(
                f"model was trained with prompt format {meta.get('prompt_format_version')!r}, "
                f"this code formats version {PROMPT_FORMAT_VERSION!r}"
            )
        device = torch.device(device) if device else pick_device()
        base = cls._load_base(model_dir, meta)
        model = PeftModel.from_pretrained(base, model_dir / ADAPTER_DIR).merge_and_unload()
        model.to(device).eval()
        return cls(
            model=model,
            tokenizer=load_tokenizer(model_dir / TOKENIZER_DIR),
            labels=tuple(meta["labels"]),
            seq_len=int(meta["seq_len"]),
            threshold=float(meta.get("threshold", DEFAULT_THRESHOLD)),
        )

    @staticmethod
    def _load_base(model_dir: Path, meta: dict) -> torch.nn.Module:
        """base/ holds the tiny random-init base; a pretrained base stays where it was imported
        (a folder or s3:// prefix, named with its hash in triage.json) and is loaded from there."""
        if (model_dir / BASE_DIR).is_dir():
            return Llama4ForCausalLM.from_pretrained(model_dir / BASE_DIR)
        source = meta.get("base_model") or {}
        if not source.get("path"):
            raise FileNotFoundError(f"{model_dir} has no {BASE_DIR}/ and triage.json names no base model path")
        from llama_platform.training.model import load_pretrained

        dtype = torch.bfloat16 if pick_device().type == "cuda" else torch.float32
        return load_pretrained(source["path"], model_dir / ".base-cache", expected_hash=source.get("model_hash"),
                               dtype=dtype).model

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def _completion_logprobs(
        self, prompts: Sequence[str], completions: Sequence[str], add_eos: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        was_training = self.model.training
        self.model.eval()
        sums, counts = [], []
        try:
            for start in range(0, len(prompts), self.batch_size):
                encoded = [
                    encode_example(self.tokenizer, p, c, self.seq_len, add_eos=add_eos)
                    for p, c in zip(prompts[start : start + self.batch_size], completions[start : start + self.batch_size])
                ]
                batch = {k: v.to(self.device) for k, v in collate(encoded, self.tokenizer.pad_token_id).items()}
                s, n = completion_token_logprobs(self.model, batch)
                sums.append(s.cpu())
                counts.append(n.cpu())
        finally:
            self.model.train(was_training)
        return torch.cat(sums), torch.cat(counts)

    def predict(self, prompts: Sequence[str]) -> list[dict]:
        """For each prompt: {"labels": [...], "scores": {label: probability}} (scores sum to 1).

        The predicted labels are the top-1 label plus any other scoring at least `threshold`.
        """
        prompts = list(prompts)
        if not prompts:
            return []
        for p in prompts:
            if not isinstance(p, str) or not p.strip():
                raise ValueError("each prompt must be a non-empty string")
        k = len(self.labels)
        # Without EOS: a multi-label answer continues after its first label (" bug, docs").
        candidates = [format_completion([label]) for label in self.labels]
        logp, _ = self._completion_logprobs(
            [p for p in prompts for _ in range(k)], candidates * len(prompts), add_eos=False
        )
        probs = torch.softmax(logp.view(len(prompts), k), dim=-1)
        results = []
        for row in probs.tolist():
            scores = dict(zip(self.labels, row))
            ranked = sorted(scores, key=lambda label: scores[label], reverse=True)
            chosen = [ranked[0]] + [l for l in ranked[1:] if scores[l] >= self.threshold]
            results.append({"labels": chosen, "scores": scores})
        return results

    def loss(self, prompts: Sequence[str], completions: Sequence[str]) -> float:
        """Mean cross-entropy per completion token (EOS included), the training objective."""
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        if not prompts:
            raise ValueError("no examples to compute a loss on")
        sums, counts = self._completion_logprobs(list(prompts), list(completions), add_eos=True)
        return float(-sums.sum() / counts.sum())


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 50.0))  # capped: exp of a diverged loss is just inf noise
