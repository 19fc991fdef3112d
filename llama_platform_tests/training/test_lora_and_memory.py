"""LoRA targets that fit MoE, the QLoRA / ZeRO-3 configs, and the memory plan's arithmetic."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from transformers import Llama4ForCausalLM
from transformers.quantizers.base import SequentialLlama4TextExperts

from llama_platform.training.memory import PRESETS, Shape, markdown_table, memory_plan
from llama_platform.training.model import (
    apply_lora,
    build_model,
    has_fused_experts,
    qlora_quantization_config,
    tiny_llama4_config,
    zero3_config,
)

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def config():
    return tiny_llama4_config(vocab_size=300, hidden_size=32, num_layers=4, num_experts=4, intermediate_size=48)


def adapted(model) -> set[str]:
    """Module paths (relative to the base model) that carry a LoRA adapter."""
    names = set()
    for name, _ in model.named_parameters():
        if "lora_A" in name:
            names.add(re.sub(r"^base_model\.model\.|\.lora_A.*$|\.base_layer", "", name))
    return names


def test_default_targets_attention_shared_expert_and_dense_mlp(config):
    model = apply_lora(build_model(config, seed=0), r=4, include_lm_head=False)
    got = adapted(model)
    # Layers 0, 2 dense; 1, 3 MoE.
    for layer in range(4):
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            assert f"model.layers.{layer}.self_attn.{proj}" in got
    for layer in (0, 2):
        assert {f"model.layers.{layer}.feed_forward.{p}" for p in ("gate_proj", "up_proj", "down_proj")} <= got
    for layer in (1, 3):
        assert {f"model.layers.{layer}.feed_forward.shared_expert.{p}" for p in ("gate_proj", "up_proj", "down_proj")} <= got
    assert not any("router" in n or "experts" in n or "lm_head" in n for n in got), got
    assert len(got) == 4 * 4 + 4 * 3
    # Frozen base: only adapter weights train.
    assert all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)


def test_routed_experts_via_target_parameters_and_router_never(config):
    base = build_model(config, seed=0)
    assert has_fused_experts(base)
    model = apply_lora(base, r=4, include_lm_head=True, routed_experts=True)
    assert model.peft_config["default"].target_parameters == [
        "feed_forward.experts.gate_up_proj", "feed_forward.experts.down_proj"]
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    for layer in (1, 3):
        assert any(f"layers.{layer}.feed_forward.experts" in n and "lora_A" in n for n in trainable)
    assert any("lm_head.lora_A" in n for n in trainable)
    assert not any("router" in n for n in trainable)
    # The experts' LoRA gets gradients through the MoE forward (B starts at zero, so B moves).
    ids = torch.randint(4, 300, (2, 12))
    model(input_ids=ids, labels=ids).loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad and "experts" in n and "lora_B" in n}
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads.values())


def test_routed_experts_as_modules_when_a_quantizer_split_them(config):
    """bitsandbytes gets per-expert Linear layers (transformers' SequentialLlama4TextExperts):
    then the routed experts are adapted by module path instead of target_parameters."""
    base = build_model(config, seed=0)
    for layer in (1, 3):
        base.model.layers[layer].feed_forward.experts = SequentialLlama4TextExperts(config)
    assert not has_fused_experts(base)
    without = adapted(apply_lora(build_model(config, seed=0), r=4, include_lm_head=False))
    model = apply_lora(base, r=4, include_lm_head=False, routed_experts=True)
    got = adapted(model)
    assert "model.layers.1.feed_forward.experts.3.down_proj" in got
    assert len(got) == len(without) + 2 * 4 * 3
    assert model.peft_config["default"].target_parameters in (None, [])


def test_qlora_config_is_nf4_double_quant_bf16_compute():
    q = qlora_quantization_config()
    assert q.load_in_4bit and not q.load_in_8bit
    assert q.bnb_4bit_quant_type == "nf4"
    assert q.bnb_4bit_use_double_quant
    assert q.bnb_4bit_compute_dtype == torch.bfloat16
    assert "router" in q.llm_int8_skip_modules and "lm_head" in q.llm_int8_skip_modules
    assert q.to_dict()["quant_method"] == "bitsandbytes"


def test_zero3_config_shards_params_and_fills_autos():
    cfg = zero3_config(gradient_accumulation_steps=4)
    assert cfg["zero_optimization"]["stage"] == 3 and cfg["bf16"]["enabled"] == "auto"
    assert cfg["gradient_accumulation_steps"] == 4
    deepspeed = pytest.importorskip("deepspeed")  # the `multigpu` extra
    from transformers import TrainingArguments
    from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

    args = TrainingArguments(output_dir="/tmp/unused-z3", per_device_train_batch_size=2, gradient_accumulation_steps=4,
                             max_grad_norm=0.5, bf16=True, deepspeed=cfg, use_cpu=True, report_to="none")
    resolved = args.hf_deepspeed_config.config
    assert is_deepspeed_zero3_enabled()
    assert resolved["train_micro_batch_size_per_gpu"] == 2 and resolved["gradient_clipping"] == 0.5
    assert resolved["bf16"]["enabled"] is True
    assert deepspeed.__version__ == "0.19.8"


def test_memory_shape_counts_match_a_real_model(config):
    model = Llama4ForCausalLM(config)
    shape = Shape.of(config)
    assert shape.total_params == sum(p.numel() for p in model.parameters())
    lora = apply_lora(build_model(config, 0), r=8, include_lm_head=False)
    assert shape.lora_params(8) == sum(p.numel() for p in lora.parameters() if p.requires_grad)


def test_memory_plan_known_models_and_methods():
    scout, maverick, anchor = (Shape.of(PRESETS[k]) for k in PRESETS)
    assert 105e9 < scout.total_params < 110e9 and 15e9 < scout.active_params < 18e9
    assert 395e9 < maverick.total_params < 405e9 and 15e9 < maverick.active_params < 18e9
    assert 2.4e9 < anchor.total_params < 2.7e9
    q = memory_plan(PRESETS["Llama 4 Scout 17B-16E"], "qlora", 1)
    assert q.total < 80  # the example: Scout QLoRA on one 80 GB card (with checkpointing)
    assert q.total_no_ckpt > q.total
    z4, z8 = (memory_plan(PRESETS["Llama 4 Scout 17B-16E"], "lora_zero3", n) for n in (4, 8))
    assert z8.weights < z4.weights and z8.lora == pytest.approx(z4.lora / 2)
    assert memory_plan(PRESETS["Llama 4 Maverick 17B-128E"], "qlora", 1).total > 80
    with pytest.raises(ValueError):
        memory_plan(PRESETS["anchor 2.5B"], "qlora", 2)


def test_readme_table_is_the_generated_one():
    assert markdown_table() in README.read_text(), "README's memory table is stale: paste " \
        "`python -m llama_platform.training.memory` into the training section"
