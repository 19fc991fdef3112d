"""The model of a run: the base Llama 4 (tiny random-init, or a real checkpoint), its LoRA
adapter, and the two ways to fit a big one (QLoRA on one GPU, bf16 LoRA under ZeRO-3).

1. `tiny_llama4_config` / `build_model`: the local profile's CPU-sized random-init model. The
   architecture is the real one (Llama4ForCausalLM with MoE layers, chunked/NoPE attention).
2. `load_pretrained`: a Llama4ForCausalLM or Llama4ForConditionalGeneration checkpoint in
   Hugging Face layout, from a folder or an s3:// prefix, hash-verified (registry.py).
3. `lora_config` / `apply_lora`: targets that fit MoE (never all-linear).
4. `qlora_quantization_config` / `zero3_config`: chosen by TrainConfig.method; memory.py says
   what each costs per GPU.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import Llama4ForCausalLM, Llama4TextConfig

from llama_platform.training import registry, storage

ATTENTION_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj"]
# Dense MLPs (non-MoE layers and each MoE layer's shared expert). Never "all-linear": the MoE
# router is an nn.Linear subclass returning a tuple, which a LoRA wrapper breaks (FIELD-NOTES).
MLP_PROJECTIONS = ["gate_proj", "up_proj", "down_proj"]
# The output head too: a random-init head's logits are tiny (std 0.02 weights), so without an
# update there the best reachable token probability stays far from 1 and the loss plateaus.
OUTPUT_HEAD = ["lm_head"]
# transformers keeps each MoE layer's routed experts as two fused 3-D parameters; peft reaches
# them only through target_parameters (a LoRA delta per expert).
ROUTED_EXPERT_PARAMETERS = ["feed_forward.experts.gate_up_proj", "feed_forward.experts.down_proj"]
TINY_RANDOM_INIT = "tiny-random-init"


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
    attention_chunk_size: int = 8192,
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
        # Llama 4's chunked attention layers see only their chunk of the *row* (8192 tokens in the
        # real models). A packed row holds many issues, so the chunk must cover the whole row or
        # issues straddling a chunk boundary lose their start: keep the real models' size.
        attention_chunk_size=attention_chunk_size,
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


# --- 2. real checkpoints ------------------------------------------------------------------

@dataclass
class LoadedBase:
    model: Llama4ForCausalLM
    tokenizer: Any
    # kind, source_class, model_hash, path: logged to MLflow and written to triage.json
    info: dict[str, Any] = field(default_factory=dict)


def load_pretrained(
    path: str,
    cache_dir: str | Path,
    expected_hash: str | None = None,
    dtype: torch.dtype = torch.bfloat16,
    attn_implementation: str = "sdpa",
    quantization_config: Any = None,
    device_map: Any = None,
) -> LoadedBase:
    """A Llama 4 checkpoint in Hugging Face layout (folder or s3:// prefix) as a Llama4ForCausalLM.

    A Llama4ForConditionalGeneration checkpoint (text + vision) is loaded text-only: its
    `language_model.*` weights go into a Llama4ForCausalLM built from `config.text_config`, and
    the vision tower and projector are never read. Our data is issue text, so training the
    language model alone gives the same result while the vision weights neither take memory
    nor need LoRA-aware handling; the adapter's module names are those of Llama4ForCausalLM,
    so serving loads it the same way whichever class the checkpoint was.
    """
    from transformers import AutoConfig, AutoTokenizer, Llama4Config

    folder = storage.download_dir(path, Path(cache_dir))
    manifest = registry.verify(folder, expected_hash)
    config = AutoConfig.from_pretrained(folder)
    if isinstance(config, Llama4Config):
        text_config, source = config.text_config, "Llama4ForConditionalGeneration"
        key_mapping = {r"^language_model\.": ""}
    elif isinstance(config, Llama4TextConfig):
        text_config, source, key_mapping = config, "Llama4ForCausalLM", None
    else:
        raise ValueError(f"{path}: a {type(config).__name__} checkpoint; expected a Llama 4 one")
    text_config.use_cache = False
    kwargs: dict[str, Any] = {"config": text_config, "dtype": dtype, "attn_implementation": attn_implementation}
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
    if device_map is not None:
        kwargs["device_map"] = device_map
    # The vision weights show up as "unexpected" keys: expected here, and a table of thousands
    # of names in the log would hide a real problem; real missing keys still raise below.
    with _quiet_transformers():
        model, report = Llama4ForCausalLM.from_pretrained(
            folder, key_mapping=key_mapping, output_loading_info=True, **kwargs
        )
    if report.get("missing_keys"):
        raise ValueError(f"{path}: checkpoint lacks weights {sorted(report['missing_keys'])[:5]}")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        # Padding never reaches the loss (labels are IGNORE_INDEX there), so any id will do.
        tokenizer.pad_token = tokenizer.eos_token
    skipped = len(report.get("unexpected_keys") or [])
    return LoadedBase(model, tokenizer, {
        "kind": "pretrained",
        "source_class": source,
        "model_hash": manifest["model_hash"],
        "path": path,
        "skipped_tensors": skipped,
    })


@contextmanager
def _quiet_transformers():
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def tiny_model_hash(model_dir: Path) -> str:
    """The content hash of a saved tiny base (same scheme as imported models)."""
    files = {
        rel: {"sha256": registry.file_sha256(model_dir / rel)}
        for rel in storage.list_files(str(model_dir))
    }
    return registry.model_hash(files)


# --- 3. LoRA targets that fit MoE -----------------------------------------------------------

def lora_target_modules(mlp: bool = True, routed_expert_modules: bool = False, lm_head: bool = False) -> str:
    """A regex (peft full-matches it against module paths) naming the Linear layers to adapt.

    By path, not by class: attention q/k/v/o; with `mlp`, the dense layers' MLP and each MoE
    layer's shared expert; with `routed_expert_modules`, per-expert Linear layers (only exist
    when a quantizer split the fused experts, as bitsandbytes does). The router is never named.
    """
    parts = [r"self_attn\.(?:q_proj|k_proj|v_proj|o_proj)"]
    if mlp:
        parts.append(r"feed_forward\.(?:shared_expert\.)?(?:gate_proj|up_proj|down_proj)")
    if routed_expert_modules:
        parts.append(r"feed_forward\.experts\.\d+\.(?:gate_proj|up_proj|down_proj)")
    pattern = r"model\.layers\.\d+\.(?:" + "|".join(parts) + ")"
    return f"(?:{pattern}|lm_head)" if lm_head else pattern


def has_fused_experts(model: torch.nn.Module) -> bool:
    return any(name.endswith("feed_forward.experts") and isinstance(getattr(mod, "gate_up_proj", None), torch.nn.Parameter)
               for name, mod in model.named_modules())


def lora_config(
    model: torch.nn.Module,
    r: int = 8,
    alpha: int = 16,
    dropout: float = 0.0,
    include_mlp: bool = True,
    include_lm_head: bool = True,
    routed_experts: bool = False,
) -> LoraConfig:
    fused = has_fused_experts(model)
    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=lora_target_modules(include_mlp, routed_experts and not fused, include_lm_head),
        target_parameters=ROUTED_EXPERT_PARAMETERS if routed_experts and fused else None,
        bias="none",
        task_type="CAUSAL_LM",
    )


def apply_lora(
    model: Llama4ForCausalLM,
    r: int = 8,
    alpha: int = 16,
    dropout: float = 0.0,
    include_mlp: bool = True,
    include_lm_head: bool = True,
    routed_experts: bool = False,
) -> PeftModel:
    """Wrap `model` with LoRA (see lora_config); every base weight stays frozen."""
    return get_peft_model(model, lora_config(model, r, alpha, dropout, include_mlp, include_lm_head, routed_experts))


# --- 4. fitting a big model -------------------------------------------------------------------

def qlora_quantization_config():
    """QLoRA's base: 4-bit NF4 weights, double-quantized scales, bf16 compute.

    transformers splits Llama 4's fused experts into per-expert Linear layers for bitsandbytes
    (SequentialLlama4TextExperts), so the routed experts are 4-bit too: that is what puts
    Scout's 108B parameters on one 80 GB card (memory.py). The router and lm_head stay bf16.
    """
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
        bnb_4bit_quant_storage=torch.bfloat16,
        llm_int8_skip_modules=["router", "lm_head"],
    )


def zero3_config(gradient_accumulation_steps: int = 1, offload_optimizer: bool = False) -> dict[str, Any]:
    """DeepSpeed ZeRO-3 for bf16 LoRA over several GPUs/nodes, handed to TrainingArguments.

    Stage 3 shards the frozen bf16 base over all ranks and gathers one module at a time; "auto"
    values are filled in by transformers from TrainingArguments. The fused expert tensors of a
    layer are one parameter each, so ZeRO-3 gathers a whole MoE layer's experts at once: the
    working set memory.py adds on top of the shards.
    """
    return {
        "bf16": {"enabled": "auto"},  # from TrainingArguments.bf16 (the run's precision)
        "zero_optimization": {
            "stage": 3,
            "overlap_comm": True,
            "contiguous_gradients": True,
            "reduce_bucket_size": "auto",
            "stage3_prefetch_bucket_size": "auto",
            "stage3_param_persistence_threshold": "auto",
            "stage3_gather_16bit_weights_on_model_save": False,  # only the adapter is saved
            "offload_optimizer": {"device": "cpu" if offload_optimizer else "none"},
        },
        "gradient_accumulation_steps": gradient_accumulation_steps,
        "gradient_clipping": "auto",
        "train_micro_batch_size_per_gpu": "auto",
        "train_batch_size": "auto",
        "steps_per_print": 10**9,  # progress goes through our callbacks
        "wall_clock_breakdown": False,
    }


def base_model_info_for_tiny(model_dir: Path) -> dict[str, Any]:
    return {"kind": TINY_RANDOM_INIT, "source_class": "Llama4ForCausalLM",
            "model_hash": tiny_model_hash(model_dir), "path": None}
