"""Routed-only Llama 4 MoE equals transformers' all-experts MoE (fp32), with and without peft."""

from __future__ import annotations

import copy

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers.models.llama4.modeling_llama4 import Llama4TextMoe

from llama_platform.training.model import build_model, tiny_llama4_config
from llama_platform.training.moe import RoutedLlama4TextExperts, RoutedLlama4TextMoe, use_routed_experts

EXPERT_PARAMETERS = ["feed_forward.experts.gate_up_proj", "feed_forward.experts.down_proj"]


def tiny_model(top_k: int = 1, num_experts: int = 4):
    config = tiny_llama4_config(vocab_size=300, num_experts=num_experts)
    config.num_experts_per_tok = top_k
    return build_model(config, seed=0)


def grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def assert_same_grads(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys() and a
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("top_k", [1, 2])
def test_routed_moe_block_equals_reference_forward_and_gradients(top_k):
    reference = tiny_model(top_k).model.layers[1].feed_forward
    assert isinstance(reference, Llama4TextMoe)
    routed = copy.deepcopy(reference)
    use_routed_experts(routed)
    assert type(routed) is RoutedLlama4TextMoe and type(routed.experts) is RoutedLlama4TextExperts

    x = torch.randn(3, 11, 64, requires_grad=True)
    x_routed = x.detach().clone().requires_grad_(True)
    out, logits = reference(x)
    out_routed, logits_routed = routed(x_routed)
    torch.testing.assert_close(out_routed, out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits_routed, logits)
    # Every expert got tokens here, so all expert weights get gradients (a real test of routing).
    assert len(set(torch.topk(logits, top_k).indices.flatten().tolist())) > 1

    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    (out_routed * weights).sum().backward()
    torch.testing.assert_close(x_routed.grad, x.grad, rtol=1e-4, atol=1e-6)
    assert_same_grads(grads(routed), grads(reference))
    assert routed.router.weight.grad.abs().sum() > 0


def test_whole_model_equals_reference_and_keeps_its_state_dict():
    reference = tiny_model()
    routed = copy.deepcopy(reference)
    assert use_routed_experts(routed) == 2  # MoE on layers 1 and 3
    assert use_routed_experts(routed) == 2  # idempotent
    assert routed.state_dict().keys() == reference.state_dict().keys()

    ids = torch.randint(3, 300, (2, 33))
    loss = reference(input_ids=ids, labels=ids).loss
    loss_routed = routed(input_ids=ids, labels=ids).loss
    torch.testing.assert_close(loss_routed, loss, rtol=1e-5, atol=1e-6)
    loss.backward()
    loss_routed.backward()
    assert_same_grads(grads(routed), grads(reference))


@pytest.mark.parametrize("convert_first", [True, False], ids=["routed-then-peft", "peft-then-routed"])
def test_lora_on_routed_experts_via_target_parameters(convert_first):
    """peft's ParamWrapper must feed the routed forward W + B·A (B is non-zero here, so a routed
    forward that read the bare weights would differ)."""
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"],
        target_parameters=EXPERT_PARAMETERS,
        init_lora_weights=False,  # random A and B: the adapter changes the output
    )
    base = tiny_model(top_k=2)
    torch.manual_seed(1)
    reference = get_peft_model(copy.deepcopy(base), config)
    if convert_first:
        torch.manual_seed(1)
        routed_base = copy.deepcopy(base)
        assert use_routed_experts(routed_base) == 2
        routed = get_peft_model(routed_base, config)
    else:
        routed = copy.deepcopy(reference)
        assert use_routed_experts(routed) == 2
    assert routed.state_dict().keys() == reference.state_dict().keys()
    torch.testing.assert_close(dict(routed.named_parameters()), dict(reference.named_parameters()))

    ids = torch.randint(3, 300, (2, 29))
    with reference.disable_adapter():
        plain = reference(input_ids=ids).logits
    loss = reference(input_ids=ids, labels=ids).loss
    loss_routed = routed(input_ids=ids, labels=ids).loss
    assert not torch.allclose(reference(input_ids=ids).logits, plain)  # the expert adapters matter
    torch.testing.assert_close(loss_routed, loss, rtol=1e-5, atol=1e-6)
    loss.backward()
    loss_routed.backward()
    expert_grads = {n: g for n, g in grads(routed).items() if ".experts." in n}
    assert len(expert_grads) == 2 * 2 * 2  # 2 MoE layers x (gate_up, down) x (A, B)
    assert all(g.abs().sum() > 0 for g in expert_grads.values())
    assert_same_grads(grads(routed), grads(reference))


def test_grouped_mm_kernel_matches_the_loop():
    """torch's grouped GEMM (the CUDA bf16 path) against the per-expert loop: on CPU grouped_mm
    runs in bf16 only, so both run in bf16 and are compared at bf16 precision."""
    block = tiny_model(top_k=2).model.layers[1].feed_forward.to(torch.bfloat16)
    use_routed_experts(block, kernel="loop")
    grouped = copy.deepcopy(block)
    use_routed_experts(grouped, kernel="grouped_mm")
    x = torch.randn(40, 64, dtype=torch.bfloat16)
    x_grouped = x.clone().requires_grad_(True)
    x.requires_grad_(True)
    out, _ = block(x)
    out_grouped, _ = grouped(x_grouped)
    torch.testing.assert_close(out_grouped, out, rtol=2e-2, atol=2e-3)
    out.float().square().sum().backward()
    out_grouped.float().square().sum().backward()
    torch.testing.assert_close(x_grouped.grad, x.grad, rtol=2e-2, atol=2e-3)
    loop_grads = grads(block)
    for name, g in grads(grouped).items():
        torch.testing.assert_close(g, loop_grads[name], rtol=2e-2, atol=2e-3, msg=name)


def test_unknown_kernel_is_refused():
    with pytest.raises(ValueError, match="unknown MoE kernel"):
        use_routed_experts(tiny_model(), kernel="fast")
