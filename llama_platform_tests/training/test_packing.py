"""Packing with document masking: in fp32 a packed row computes exactly what each issue alone does."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from llama_platform.training.batching import IGNORE_INDEX, Encoded, collate
from llama_platform.training.loss import response_loss
from llama_platform.training.model import apply_lora, build_model, tiny_llama4_config
from llama_platform.training.moe import use_routed_experts
from llama_platform.training.packing import (
    collate_packed,
    document_ids,
    enable_document_masking,
    pack_examples,
)

VOCAB = 300
PAD = 0


def make_examples(lengths, seed=0, response=5) -> list[Encoded]:
    generator = torch.Generator().manual_seed(seed)
    examples = []
    for n in lengths:
        ids = [1] + torch.randint(3, VOCAB, (n - 1,), generator=generator).tolist()
        k = min(response, n - 1)
        examples.append(Encoded(input_ids=ids, labels=[IGNORE_INDEX] * (n - k) + ids[n - k :]))
    return examples


def tiny_model():
    return build_model(tiny_llama4_config(vocab_size=VOCAB, pad_token_id=PAD), seed=0)


# --- pack_examples -------------------------------------------------------------------------------


def test_pack_examples_places_every_example_once_within_seq_len():
    normal = torch.randn(500, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    lengths = (math.log(350) + 0.8 * normal).exp().clamp(2, 2048).long().tolist()  # issue-like
    examples = [Encoded([1] * n, [IGNORE_INDEX] * n) for n in lengths]
    rows = pack_examples(examples, 4096)
    assert sorted(i for row in rows for i in row) == list(range(len(examples)))
    assert all(sum(lengths[i] for i in row) <= 4096 for row in rows)
    lower_bound = math.ceil(sum(lengths) / 4096)
    assert len(rows) <= lower_bound + 1  # best-fit decreasing: near-perfect on these lengths
    assert pack_examples(examples, 4096) == rows  # deterministic


def test_pack_examples_refuses_examples_longer_than_a_row():
    with pytest.raises(ValueError, match="example 1 has 9 tokens, more than seq_len=8"):
        pack_examples(make_examples([4, 9]), 8)
    with pytest.raises(ValueError, match="seq_len must be >= 1"):
        pack_examples(make_examples([4]), 0)


# --- collate_packed ------------------------------------------------------------------------------


def test_positions_restart_and_labels_never_cross_a_boundary():
    examples = make_examples([6, 4, 7], response=3)
    examples[1] = Encoded(examples[1].input_ids, list(examples[1].input_ids))  # labels on every token
    batch = collate_packed([examples[:2], examples[2:]], PAD, pad_to=12)
    assert set(batch) == {"input_ids", "labels", "position_ids"}  # no attention_mask (see collate_packed)
    assert batch["position_ids"].tolist() == [
        [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 0, 1],  # two issues, then two pad tokens as their own "document"
        [0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4],
    ]
    assert batch["input_ids"][0, :10].tolist() == examples[0].input_ids + examples[1].input_ids
    assert batch["input_ids"][0, 10:].tolist() == [PAD, PAD]
    labels = batch["labels"][0].tolist()
    assert labels[:6] == examples[0].labels
    # The second issue labels every token, but its first is never a target: predicting it would
    # ask the first issue's last token about the second issue.
    assert labels[6] == IGNORE_INDEX and labels[7:10] == examples[1].labels[1:]
    assert labels[10:] == [IGNORE_INDEX] * 2
    docs = document_ids(batch["position_ids"])
    assert docs[0].tolist() == [0] * 6 + [1] * 4 + [2] * 2
    # A target at t is predicted from t - 1: both must be in the same document.
    targets = batch["labels"][:, 1:] != IGNORE_INDEX
    assert (docs[:, 1:][targets] == docs[:, :-1][targets]).all()


def test_collate_packed_refuses_rows_wider_than_pad_to():
    with pytest.raises(ValueError, match="does not fit pad_to=8"):
        collate_packed([make_examples([5, 5])], PAD, pad_to=8)


# --- document masking: packed logits equal each issue alone --------------------------------------


def packed_and_alone_logits(model, examples, rows, implementation):
    """(packed, alone) logits per issue: alone with plain causal sdpa, packed with `implementation`
    (flex attention compiles per shape on CPU, so it runs once, on the packed batch)."""
    enable_document_masking(model, "sdpa")
    alone = [model(input_ids=torch.tensor([e.input_ids])).logits[0] for e in examples]
    assert enable_document_masking(model, implementation) == implementation
    batch = collate_packed([[examples[i] for i in row] for row in rows], PAD)
    packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits
    pairs = []
    for r, row in enumerate(rows):
        start = 0
        for i in row:
            n = len(examples[i].input_ids)
            pairs.append((packed[r, start : start + n], alone[i]))
            start += n
    return pairs


@pytest.mark.parametrize("implementation", ["sdpa_documents", "sdpa", "flex_attention"])
def test_packed_logits_equal_each_issue_alone_fp32(implementation):
    """Forward only: flex attention has no CPU backward (torch 2.13); the CPU path trains below."""
    model = tiny_model().eval()
    use_routed_experts(model)
    examples = make_examples([17, 30, 9, 25, 40])
    rows = pack_examples(examples, 64)
    assert max(len(row) for row in rows) >= 3
    with torch.no_grad():
        pairs = packed_and_alone_logits(model, examples, rows, implementation)
    assert len(pairs) == len(examples)
    for packed, alone in pairs:
        torch.testing.assert_close(packed, alone, rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("implementation", ["sdpa_documents", "sdpa"])
def test_without_restarting_positions_issues_see_each_other(implementation):
    """The negative control: the same row with running positions (or with an attention_mask,
    which turns off transformers' packed-sequence detection) changes the later issues' logits."""
    model = tiny_model().eval()
    enable_document_masking(model, implementation)
    examples = make_examples([20, 20])
    batch = collate_packed([examples], PAD)
    with torch.no_grad():
        alone = model(input_ids=torch.tensor([examples[1].input_ids])).logits[0]
        masked = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0, 20:]
        running = model(input_ids=batch["input_ids"]).logits[0, 20:]
    torch.testing.assert_close(masked, alone, rtol=1e-4, atol=2e-5)
    assert (running - alone).abs().max() > 1e-3
    if implementation == "sdpa":
        with torch.no_grad():
            with_mask = model(
                input_ids=batch["input_ids"],
                position_ids=batch["position_ids"],
                attention_mask=torch.ones_like(batch["input_ids"]),
            ).logits[0, 20:]
        assert (with_mask - alone).abs().max() > 1e-3


def test_packed_training_step_equals_issues_alone_fp32():
    """The CPU training path (sdpa, routed MoE, LoRA): loss and LoRA gradients of one packed batch
    equal those of the issues run one by one."""
    base = tiny_model()
    use_routed_experts(base)
    packed_model = apply_lora(base, r=4)
    for name, p in packed_model.named_parameters():  # non-zero B: LoRA A gets gradients too
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    alone_model = copy.deepcopy(packed_model)
    assert enable_document_masking(packed_model) == "sdpa_documents"  # the CPU default
    examples = make_examples([17, 30, 9, 25, 40], response=6)
    rows = pack_examples(examples, 64)

    batch = collate_packed([[examples[i] for i in row] for row in rows], PAD)
    loss, count = response_loss(packed_model, batch)
    loss.backward()

    total = torch.zeros(())
    for e in examples:
        logits = alone_model(input_ids=torch.tensor([e.input_ids])).logits[0, :-1]
        targets = torch.tensor(e.labels[1:])
        total = total + F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="sum")
    assert count == sum(sum(t != IGNORE_INDEX for t in e.labels[1:]) for e in examples)
    alone_loss = total / count
    alone_loss.backward()

    torch.testing.assert_close(loss, alone_loss, rtol=1e-5, atol=1e-6)
    packed_grads = {n: p.grad for n, p in packed_model.named_parameters() if p.requires_grad}
    alone_grads = {n: p.grad for n, p in alone_model.named_parameters() if p.requires_grad}
    assert packed_grads.keys() == alone_grads.keys() and packed_grads
    for name, grad in packed_grads.items():
        assert grad is not None and grad.abs().sum() > 0, name
        torch.testing.assert_close(grad, alone_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_response_loss_equals_the_models_own_loss():
    model = tiny_model()
    batch = collate_packed([make_examples([12, 20]), make_examples([25], seed=1)], PAD)
    loss, count = response_loss(model, batch)
    reference = model(**batch).loss
    torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-6)
    assert count == int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())


def test_enable_document_masking_refuses_implementations_without_packed_masks():
    with pytest.raises(ValueError, match="does not build document masks"):
        enable_document_masking(tiny_model(), "flash_attention_2")


def test_span_mask_finds_documents_and_chunks():
    """sdpa_documents' spans: one per issue, and Llama 4's chunked layers split an issue at its
    chunk boundaries (chunk size 8 here); a padded batch falls back to plain sdpa (evaluation)."""
    config = tiny_llama4_config(vocab_size=VOCAB, pad_token_id=PAD)
    config.attention_chunk_size = 8
    config.layer_types = ["chunked_attention", "full_attention"] * 2
    model = build_model(config, seed=0).eval()
    enable_document_masking(model, "sdpa_documents")
    examples = make_examples([5, 12, 7])
    batch = collate_packed([examples], PAD)
    spans = {}

    def record(module, args, kwargs):
        spans[module.layer_idx] = kwargs["attention_mask"].spans

    hooks = [layer.self_attn.register_forward_pre_hook(record, with_kwargs=True) for layer in model.model.layers]
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0]
    for hook in hooks:
        hook.remove()
    with torch.no_grad():
        alone = [model(input_ids=torch.tensor([e.input_ids])).logits[0] for e in examples]
    assert spans[1] == (((0, 5), (5, 17), (17, 24)),)  # full attention: the three issues
    assert spans[0] == (((0, 5), (5, 13), (13, 17), (17, 24)),)  # chunked: issue 2 split at 8 tokens
    torch.testing.assert_close(packed, torch.cat(alone), rtol=1e-4, atol=2e-5)
    padded = collate([examples[0], examples[2]], PAD)
    with torch.no_grad():
        got = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]).logits
        enable_document_masking(model, "sdpa")
        want = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]).logits
    mask = padded["attention_mask"].bool()
    torch.testing.assert_close(got[mask], want[mask])


def test_sdpa_documents_generates_like_sdpa():
    """With a KV cache (generation) sdpa_documents is transformers' sdpa, token for token."""
    model = tiny_model().eval()
    prompt = torch.tensor([make_examples([9])[0].input_ids])
    outputs = {}
    for implementation in ("sdpa_documents", "sdpa"):
        enable_document_masking(model, implementation)
        outputs[implementation] = model.generate(
            prompt, max_new_tokens=6, do_sample=False, use_cache=True, pad_token_id=PAD
        )
    assert outputs["sdpa_documents"].shape[1] == prompt.shape[1] + 6
    assert torch.equal(outputs["sdpa_documents"], outputs["sdpa"])
