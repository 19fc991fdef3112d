"""The training loss with logits only where there is a target.

`model(**batch).loss` projects every position onto the vocabulary and upcasts all of it to fp32,
although only response tokens carry a label (a few percent of an issue: the prompt is the issue
text). Here the model computes logits only at positions whose next token is a target
(transformers' boolean `logits_to_keep`), so the (tokens x vocab) tensor a fused linear
cross-entropy kernel (e.g. liger-kernel's) exists to avoid is never built: the logits kept are
(response tokens x vocab). Liger is therefore not used (it would add triton and a GPU-only path
for a tensor that is already small); `benchmarks/train_throughput.py` measures both losses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from llama_platform.training.batching import IGNORE_INDEX


def response_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Mean cross-entropy over the target tokens of `batch` (labels != IGNORE_INDEX), and their count.

    Equal to `model(**batch).loss` (transformers' causal-LM loss: token t predicted from t - 1,
    mean over targets). `batch` holds `labels` plus the model inputs (e.g. from collate_packed).
    """
    labels = batch["labels"]
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    targets = labels[:, 1:]
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = targets != IGNORE_INDEX
    count = int(keep.sum())
    if count == 0:
        raise ValueError("batch has no target tokens (every label is IGNORE_INDEX)")
    logits = model(**inputs, logits_to_keep=keep).logits  # (count, vocab)
    loss = F.cross_entropy(logits.float(), targets[targets != IGNORE_INDEX])
    return loss, count
