"""Sequence packing with document masking: many issues per row, none attending to another.

Dynamic padding wastes most of a batch on issue-like lengths (median ~350 tokens, a long tail to
2048): a batch of 8 is as wide as its longest issue. Packing fills each row with whole issues
instead, and three things keep every issue independent of its row-mates:

- position ids restart at 0 for each issue, so RoPE sees the same positions as the issue alone;
- attention is causal AND same-document. transformers (5.x) does this itself: when a forward gets
  `position_ids` and *no* `attention_mask`, its mask builders (`masking_utils.create_causal_mask`,
  also the chunked one Llama 4 uses) detect the restarts and AND a same-sequence mask into the
  causal one, for every attention implementation that builds masks. On CUDA that is a
  FlexAttention BlockMask (`flex_attention`, compiled; it skips the blocks the mask rules out).
  flex attention has no CPU backward in torch 2.13, and `sdpa` gets a dense block-diagonal mask
  whose masked-out pairs it still computes, so the CPU training path is `sdpa_documents`
  (attention.py): causal sdpa per document, found from the same mask function;
- the loss never crosses a boundary: labels are IGNORE_INDEX on prompt tokens and on each issue's
  first token (the one the previous issue's last token would otherwise be asked to predict).

In a training loop (what benchmarks/train_throughput.py runs as "platform"):

    use_routed_experts(model)                      # moe.py, before or after peft wraps the model
    enable_document_masking(model)                 # after moving it to its device
    rows = pack_examples(encoded, seq_len)         # once; shuffle the rows per epoch by seed
    batch = collate_packed([[encoded[i] for i in rows[r]] for r in step_rows], pad_id, pad_to=seq_len)
    loss, n_targets = response_loss(model, batch)  # loss.py; or model(**batch).loss

One caveat of the model, not of packing: Llama 4's NoPE layers scale queries by a temperature
computed from the *row* position (`attn_temperature_tuning`, floor_scale 8192). It is exactly 1
below position floor_scale - 1, so rows of up to 8191 tokens are exact; a row of 8192 changes the
scale of its very last token only.
"""

from __future__ import annotations

import bisect
from typing import Any, Sequence

import torch

from llama_platform.training.attention import SDPA_DOCUMENTS
from llama_platform.training.batching import IGNORE_INDEX, Encoded

# Attention implementations whose mask builders honour packed position ids (see the docstring).
DOCUMENT_MASKING_IMPLEMENTATIONS = ("flex_attention", SDPA_DOCUMENTS, "sdpa", "eager")


def pack_examples(examples: Sequence[Encoded], seq_len: int) -> list[list[int]]:
    """Group example indices into rows of at most `seq_len` tokens (best-fit decreasing).

    Deterministic: the same examples and seq_len give the same rows (a resumed run sees the same
    data). Examples are placed longest first (ties by index), each into the fullest row it still
    fits, which leaves a few percent of padding on issue-like lengths.

    Written here rather than taken from TRL (`trl.pack_dataset(strategy="bfd")`): that packs a
    `datasets.Dataset` into concatenated columns, while the loop needs rows of example indices
    (to shuffle rows, resume, and count real tokens) and does not use `datasets`.
    """
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    lengths = [len(e.input_ids) for e in examples]
    for i, n in enumerate(lengths):
        if n == 0:
            raise ValueError(f"example {i} has no tokens")
        if n > seq_len:
            raise ValueError(f"example {i} has {n} tokens, more than seq_len={seq_len} (encode with that seq_len)")
    rows: list[list[int]] = []
    # Free room -> rows with exactly that much room (a stack each), and the sorted distinct rooms:
    # the best fit for n is the smallest room >= n, found by bisection.
    rows_by_room: dict[int, list[int]] = {}
    rooms: list[int] = []
    for i in sorted(range(len(examples)), key=lambda j: (-lengths[j], j)):
        n = lengths[i]
        at = bisect.bisect_left(rooms, n)
        if at < len(rooms):
            room = rooms[at]
            row = rows_by_room[room].pop()
            if not rows_by_room[room]:
                del rows_by_room[room]
                rooms.pop(at)
        else:
            room, row = seq_len, len(rows)
            rows.append([])
        rows[row].append(i)
        left = room - n
        if left > 0:
            if left not in rows_by_room:
                rows_by_room[left] = []
                bisect.insort(rooms, left)
            rows_by_room[left].append(row)
    return rows


def collate_packed(
    rows: Sequence[Sequence[Encoded]], pad_token_id: int, pad_to: int | None = None
) -> dict[str, torch.Tensor]:
    """Packed rows -> `input_ids`, `labels`, `position_ids` (B, W), ready for `model(**batch)`.

    W is the longest row, or `pad_to` (a fixed width keeps shapes static for compiled kernels).
    There is deliberately no `attention_mask`: with one, transformers would skip its packed-sequence
    detection and let issues attend to each other. Padding at the end of a row is its own
    "document" (positions restart at 0, labels IGNORE_INDEX), so nothing attends to it.
    Real (non-pad) tokens: `sum(len(e.input_ids) for row in rows for e in row)`.
    """
    if not rows:
        raise ValueError("no rows to collate")
    lengths = [sum(len(e.input_ids) for e in row) for row in rows]
    for r, row in enumerate(rows):
        if not row:
            raise ValueError(f"row {r} holds no examples")
    width = max(lengths) if pad_to is None else pad_to
    if max(lengths) > width:
        raise ValueError(f"a row of {max(lengths)} tokens does not fit pad_to={pad_to}")
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        start = 0
        for e in row:
            n = len(e.input_ids)
            if len(e.labels) != n:
                raise ValueError(f"example has {n} input ids but {len(e.labels)} labels")
            input_ids[r, start : start + n] = torch.tensor(e.input_ids)
            labels[r, start + 1 : start + n] = torch.tensor(e.labels[1:])  # first token: never a target
            position_ids[r, start : start + n] = torch.arange(n)
            start += n
        position_ids[r, start:] = torch.arange(width - start)
    return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids}


def document_ids(position_ids: torch.Tensor) -> torch.Tensor:
    """Which document each token belongs to (0, 1, ... per row), read off the position restarts.

    The same rule transformers applies (`masking_utils.find_packed_sequence_indices`).
    """
    restarts = torch.diff(position_ids, prepend=position_ids[:, :1] - 1, dim=-1) != 1
    return restarts.cumsum(-1)


def enable_document_masking(model: torch.nn.Module, implementation: str | None = None) -> str:
    """Make `model(**collate_packed(...))` attend only within each document; returns the
    attention implementation chosen.

    By default flex attention where the model sits on CUDA (a compiled BlockMask kernel that skips
    fully masked blocks, so cost follows the documents' lengths, not the row's), else
    `sdpa_documents` (causal sdpa per document; flex attention has no CPU backward in torch 2.13).
    `sdpa` (a dense block-diagonal mask) also works. Works on a peft wrapper too (it sets the
    implementation on the wrapped transformers model).
    """
    base: Any = _unwrap_peft(model)
    if implementation is None:
        device = next(base.parameters()).device
        implementation = "flex_attention" if device.type == "cuda" else SDPA_DOCUMENTS
    if implementation not in DOCUMENT_MASKING_IMPLEMENTATIONS:
        raise ValueError(
            f"attention implementation {implementation!r} does not build document masks from packed "
            f"position ids; use one of {DOCUMENT_MASKING_IMPLEMENTATIONS}"
        )
    base.set_attn_implementation(implementation)
    return implementation


def _unwrap_peft(model: torch.nn.Module) -> torch.nn.Module:
    get_base_model = getattr(model, "get_base_model", None)  # peft's PeftModel
    return get_base_model() if callable(get_base_model) else model
