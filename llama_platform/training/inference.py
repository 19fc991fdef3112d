"""Load a trained triage model directory and label issues with it.

Labels are chosen by scoring, not generation: for each prompt, the log-likelihood of each
candidate label's completion is computed and normalised over the candidates. A tiny model that
would ramble when sampling still ranks the four answers sensibly, and scores are probabilities.

Scoring runs the prompt once, not once per candidate: its keys and values are cached and only the
candidates' few tokens run on top of them (`_label_logprobs`), a quarter of the compute for four
labels; MoE layers run routed experts only (training/moe.py). The per-candidate full forward
(`_completion_logprobs`) stays as the exact reference and for the training loss.
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
from llama_platform.training.moe import use_routed_experts
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
        # The stock MoE runs every token through every expert; the routed one gives the same
        # result (tested) for 1/num_experts of the expert compute.
        use_routed_experts(model)
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

    def _candidate_ids(self) -> list[list[int]]:
        # Without EOS: a multi-label answer continues after its first label (" bug, docs").
        return [self.tokenizer(format_completion([label]), add_special_tokens=False).input_ids
                for label in self.labels]

    def _shared_prefix_ok(self) -> bool:
        """Cached-prefix scoring places candidate tokens after the batch's padding in the cache;
        Llama 4's chunked attention and NoPE temperature read those cache positions, which is
        exact only while sequences stay within one attention chunk and below floor_scale."""
        config = getattr(self.model.config, "text_config", self.model.config)
        limits = [getattr(config, "attention_chunk_size", None), getattr(config, "floor_scale", None)]
        core = self._core()
        # .model/.lm_head, not get_decoder(): transformers 5.24 returns the whole Llama4ForCausalLM
        # from get_decoder() (its base_model_prefix names an attribute it does not have).
        return (isinstance(getattr(core, "model", None), torch.nn.Module)
                and isinstance(getattr(core, "lm_head", None), torch.nn.Module)
                and all(v is None or self.seq_len <= v for v in limits))

    def _core(self) -> torch.nn.Module:
        """The causal LM itself: under evaluation during training it is still wrapped by peft
        (its LoRA layers sit inside the LM's modules, so calling those runs the adapter)."""
        return self.model.get_base_model() if isinstance(self.model, PeftModel) else self.model

    @torch.no_grad()
    def _label_logprobs(self, prompts: Sequence[str]) -> torch.Tensor:
        """[len(prompts), len(labels)] summed log-probabilities of each label's completion.

        One forward over the (right-padded) prompts with a KV cache gives each first candidate
        token; the cache is repeated per candidate and only the candidates' remaining tokens run.
        """
        cands = self._candidate_ids()
        k, longest = len(cands), max(len(c) for c in cands)
        room = self.seq_len - longest - 1  # as encode_example: keep <s>, drop the prompt's start
        if room < 1:
            raise ValueError(f"label completions of {longest} tokens do not fit seq_len={self.seq_len}")
        core = self._core()
        pad, dev, body, head = self.tokenizer.pad_token_id, self.device, core.model, core.lm_head
        out = []
        for start in range(0, len(prompts), self.batch_size):
            ids = []
            for p in prompts[start : start + self.batch_size]:
                x = self.tokenizer(p).input_ids
                ids.append(x[:1] + x[-room:] if len(x) - 1 > room else x)
            b, width = len(ids), max(len(x) for x in ids)
            input_ids = torch.full((b, width), pad, dtype=torch.long)
            mask = torch.zeros((b, width), dtype=torch.long)
            for row, x in enumerate(ids):
                input_ids[row, : len(x)] = torch.tensor(x)
                mask[row, : len(x)] = 1
            lengths = mask.sum(1).to(dev)
            input_ids, mask = input_ids.to(dev), mask.to(dev)
            positions = torch.arange(width, device=dev).expand(b, -1)
            first = body(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=longest > 1)
            last = first.last_hidden_state[torch.arange(b, device=dev), lengths - 1]
            first_tok = torch.tensor([c[0] for c in cands], device=dev)
            scores = torch.log_softmax(head(last).float(), dim=-1)[:, first_tok]  # [b, k]
            if longest > 1:
                steps = longest - 1
                cand_in = torch.full((k, steps), pad, dtype=torch.long)
                cand_mask = torch.zeros((k, steps), dtype=torch.long)
                targets = torch.full((k, steps), -1, dtype=torch.long)
                for j, c in enumerate(cands):
                    cand_in[j, : len(c) - 1] = torch.tensor(c[:-1])
                    cand_mask[j, : len(c) - 1] = 1
                    targets[j, : len(c) - 1] = torch.tensor(c[1:])
                cache = first.cache
                cache.batch_repeat_interleave(k)  # rows: prompt 0 x k candidates, prompt 1 x k, ...
                rest = body(
                    input_ids=cand_in.to(dev).repeat(b, 1),
                    attention_mask=torch.cat([mask.repeat_interleave(k, 0), cand_mask.to(dev).repeat(b, 1)], 1),
                    position_ids=lengths.repeat_interleave(k)[:, None] + torch.arange(steps, device=dev),
                    cache=cache, use_cache=True,
                ).last_hidden_state
                t = targets.to(dev).repeat(b, 1)
                picked = torch.log_softmax(head(rest).float(), dim=-1).gather(-1, t.clamp(min=0)[..., None])
                scores = scores + (picked.squeeze(-1) * (t >= 0)).sum(1).view(b, k)
            out.append(scores.cpu())
        return torch.cat(out)

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
        was_training = self.model.training
        self.model.eval()
        try:
            logp = self._label_logprobs(prompts) if self._shared_prefix_ok() else self._reference_label_logprobs(prompts)
        finally:
            self.model.train(was_training)
        probs = torch.softmax(logp, dim=-1)
        results = []
        for row in probs.tolist():
            scores = dict(zip(self.labels, row))
            ranked = sorted(scores, key=lambda label: scores[label], reverse=True)
            chosen = [ranked[0]] + [l for l in ranked[1:] if scores[l] >= self.threshold]
            results.append({"labels": chosen, "scores": scores})
        return results

    def _reference_label_logprobs(self, prompts: Sequence[str]) -> torch.Tensor:
        """The exact reference: one full forward per (prompt, candidate) pair."""
        k = len(self.labels)
        # Without EOS: a multi-label answer continues after its first label (" bug, docs").
        candidates = [format_completion([label]) for label in self.labels]
        logp, _ = self._completion_logprobs(
            [p for p in prompts for _ in range(k)], candidates * len(prompts), add_eos=False
        )
        return logp.view(len(prompts), k)

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
