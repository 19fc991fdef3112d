"""A tiny random-init Llama 4 text model and its LoRA adapter.

Tiny so it trains in a minute on CPU; the architecture is the real one (Llama4ForCausalLM with
MoE layers, chunked/NoPE attention), so the same code path scales to a real checkpoint on a GPU.
"""

from __future__ import annotations

from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import Llama4ForCausalLM, Llama4TextConfig

ATTENTION_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj"]
# Dense MLPs (non-MoE layers and each MoE layer's shared expert). Never "all-linear": the MoE
# router is an nn.Linear subclass returning a tuple, which a LoRA wrapper breaks (FIELD-NOTES).
MLP_PROJECTIONS = ["gate_proj", "up_proj", "down_proj"]
# The output head too: a random-init head's logits are tiny (std 0.02 weights), so without an
# update there the best reachable token probability stays far from 1 and the loss plateaus.
OUTPUT_HEAD = ["lm_head"]


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def tiny_llama4_config(
    vocab_size: int,
    hidden_size: int = 64,
    num_layers: int = 4,
    num_experts: int = 4,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 128,
    max_position_embeddings: int = 512,
    pad_token_id: int = 0,
    bos_token_id: int = 1,
    eos_token_id: int = 2,
    attn_implementation: str = "sdpa",
) -> Llama4TextConfig:
    """Llama 4 text config with MoE on every second layer (1, 3, ...), top-1 routing."""
    if hidden_size % num_heads:
        raise ValueError(f"hidden_size {hidden_size} must be divisible by num_heads {num_heads}")
    config = Llama4TextConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        intermediate_size_mlp=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        head_dim=hidden_size // num_heads,
        num_local_experts=num_experts,
        num_experts_per_tok=1,
        interleave_moe_layer_step=2,
        max_position_embeddings=max_position_embeddings,
        # Chunked attention only matters beyond the context we use; keep one chunk = whole context.
        attention_chunk_size=max_position_embeddings,
        pad_token_id=pad_token_id,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        tie_word_embeddings=False,
        use_cache=False,
    )
    config._attn_implementation = attn_implementation
    return config


def build_model(config: Llama4TextConfig, seed: int) -> Llama4ForCausalLM:
    """Random-init model; the same seed gives the same weights (the base is saved with the adapter)."""
    # A private generator state: seeding the global RNG here would also reseed the caller's.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Llama4ForCausalLM(config)
    return model


def moe_layer_indices(model: torch.nn.Module) -> list[int]:
    """Indices of decoder layers whose feed-forward is a mixture of experts."""
    base: Any = model.get_base_model() if isinstance(model, PeftModel) else model
    return [
        i for i, layer in enumerate(base.model.layers) if hasattr(layer.feed_forward, "experts")
    ]


def apply_lora(
    model: Llama4ForCausalLM,
    r: int = 8,
    alpha: int = 16,
    dropout: float = 0.0,
    include_mlp: bool = True,
    include_lm_head: bool = True,
) -> PeftModel:
    """Wrap `model` with LoRA on attention projections (by default also dense MLPs and the
    output head); every base weight stays frozen."""
    targets = (
        ATTENTION_PROJECTIONS
        + (MLP_PROJECTIONS if include_mlp else [])
        + (OUTPUT_HEAD if include_lm_head else [])
    )
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)
