"""`sdpa_documents`: document-masked attention that trains on CPU at the cost of the documents.

On CUDA, document masking is flex attention with a BlockMask (packing.enable_document_masking):
one kernel that skips the blocks the mask rules out. flex attention has no CPU backward in torch
2.13, and sdpa with the dense boolean mask transformers builds for packed rows computes every
(query, key) pair of the row and throws most away: on the tiny benchmark config that was 71% of
a training step (rows of 2048 tokens holding ~4 issues). This implementation instead runs
`scaled_dot_product_attention(is_causal=True)` once per span of the row that attends causally
within itself (an issue; or a chunk of an issue for Llama 4's chunked-attention layers), so the
cost is the sum of squared span lengths, halved by causality, instead of the row length squared.

Written here because transformers has nothing like it for CPU: its packed-sequence support for
sdpa/eager is the dense mask, and its varlen path (cu_seqlens from position ids) is flash
attention only (CUDA). It plugs into transformers the documented way: an attention function
(AttentionInterface) plus a mask builder (AttentionMaskInterface) under one name. The mask
builder does not materialise an (L x L) mask: it evaluates transformers' own mask function
(causal AND same document AND same chunk, from packed position ids) only on the sub-diagonal
(may token q see token q - 1?) to find where spans start. That is exact for masks that are causal
within contiguous spans (causal, chunked-causal, packed documents: all Llama 4 text uses).
Everything else (a KV cache, a padding mask, a sliding window: evaluation and generation with the
same model object) falls back to transformers' own sdpa mask and attention, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

SDPA_DOCUMENTS = "sdpa_documents"


@dataclass(frozen=True)
class SpanMask:
    """Per batch row, the (start, end) spans that attend causally within themselves."""

    spans: tuple[tuple[tuple[int, int], ...], ...]


def span_mask(
    batch_size: int,
    q_length: int,
    kv_length: int,
    q_offset: int = 0,
    kv_offset: int = 0,
    mask_function: Callable[..., torch.Tensor] | None = None,
    attention_mask: torch.Tensor | None = None,
    config: Any = None,
    **kwargs: Any,
) -> SpanMask | torch.Tensor | None:
    """AttentionMaskInterface builder for `sdpa_documents` (see the module docstring)."""
    assert mask_function is not None
    if (
        q_length != kv_length
        or q_offset
        or kv_offset
        or (attention_mask is not None and not bool(attention_mask.all()))
        or getattr(config, "sliding_window", None)
    ):
        return sdpa_mask(
            batch_size, q_length, kv_length, q_offset=q_offset, kv_offset=kv_offset,
            mask_function=mask_function, attention_mask=attention_mask, config=config, **kwargs,
        )
    device = kwargs.get("device", "cpu")
    batch = torch.arange(batch_size, device=device)[:, None]
    q = torch.arange(1, q_length, device=device)[None, :]
    sees_previous = mask_function(batch, 0, q, q - 1).expand(batch_size, q_length - 1)
    rows = []
    for b in range(batch_size):
        starts = [0] + (torch.nonzero(~sees_previous[b]).flatten() + 1).tolist() + [q_length]
        rows.append(tuple(zip(starts[:-1], starts[1:])))
    return SpanMask(tuple(rows))


def sdpa_documents_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: SpanMask | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """AttentionInterface function: causal sdpa per span. q/k/v are (B, heads, L, head_dim)."""
    if not isinstance(attention_mask, SpanMask):  # span_mask fell back to sdpa's own mask
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    spans = attention_mask.spans
    gqa = query.shape[1] != key.shape[1]
    rows = []
    for b, row_spans in enumerate(spans):
        parts = [
            F.scaled_dot_product_attention(
                query[b : b + 1, :, start:end],
                key[b : b + 1, :, start:end],
                value[b : b + 1, :, start:end],
                dropout_p=dropout,
                is_causal=True,
                scale=scaling,
                enable_gqa=gqa,
            )
            for start, end in row_spans
        ]
        rows.append(torch.cat(parts, dim=2) if len(parts) > 1 else parts[0])
    out = torch.cat(rows, dim=0) if len(rows) > 1 else rows[0]
    return out.transpose(1, 2).contiguous(), None  # (B, L, heads, head_dim), as transformers' sdpa returns


AttentionInterface.register(SDPA_DOCUMENTS, sdpa_documents_attention)
ALL_MASK_ATTENTION_FUNCTIONS.register(SDPA_DOCUMENTS, span_mask)
