"""Turn (prompt, completion) pairs into padded tensors with loss only on completion tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from transformers import PreTrainedTokenizerFast

IGNORE_INDEX = -100  # the label value torch's cross-entropy skips


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX on prompt tokens


def encode_example(
    tokenizer: PreTrainedTokenizerFast,
    prompt: str,
    completion: str,
    seq_len: int,
    add_eos: bool = True,
) -> Encoded:
    """<s> prompt completion [</s>], cut to seq_len by dropping the *start* of the prompt.

    The end of the prompt (features and the "Labels:" cue) is what the completion depends on,
    so long bodies lose their beginning, never the cue or the target.
    """
    prompt_ids = tokenizer(prompt).input_ids  # starts with <s>
    completion_ids = tokenizer(completion, add_special_tokens=False).input_ids
    if add_eos:
        completion_ids = completion_ids + [tokenizer.eos_token_id]
    if not completion_ids:
        raise ValueError("empty completion")
    room = seq_len - len(completion_ids) - 1  # -1 keeps <s>
    if room < 1:
        raise ValueError(f"completion of {len(completion_ids)} tokens does not fit seq_len={seq_len}")
    if len(prompt_ids) - 1 > room:
        prompt_ids = prompt_ids[:1] + prompt_ids[-room:]
    return Encoded(
        input_ids=prompt_ids + completion_ids,
        labels=[IGNORE_INDEX] * len(prompt_ids) + completion_ids,
    )


def collate(batch: Sequence[Encoded], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest example in the batch (dynamic padding)."""
    width = max(len(e.input_ids) for e in batch)
    input_ids = torch.full((len(batch), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, e in enumerate(batch):
        n = len(e.input_ids)
        input_ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        attention_mask[row, :n] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def completion_token_logprobs(
    model: torch.nn.Module, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: the summed log-probability of its completion tokens, and how many there are."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    # Token t is predicted by the logits at t-1.
    logits = logits[:, :-1].float()
    targets = batch["labels"][:, 1:]
    mask = targets != IGNORE_INDEX
    logprobs = torch.log_softmax(logits, dim=-1)
    picked = logprobs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * mask).sum(dim=1), mask.sum(dim=1)
