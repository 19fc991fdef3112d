"""Tiny Llama 4 checkpoints written in the real Hugging Face layout: sharded safetensors with an
index, config.json, generation config and a tokenizer saved with save_pretrained."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    Llama4Config,
    Llama4ForCausalLM,
    Llama4ForConditionalGeneration,
    Llama4TextConfig,
    Llama4VisionConfig,
)

from llama_platform.training.model import tiny_llama4_config
from llama_platform.training.tokenizer import train_tokenizer
from llama_platform_tests.training.synthetic import synthetic_training_set


def tiny_tokenizer(vocab_size: int = 400):
    df = synthetic_training_set(80)
    return train_tokenizer((df["prompt"] + df["completion"]).tolist(), vocab_size=vocab_size)


def tiny_text_config(tokenizer) -> Llama4TextConfig:
    config = tiny_llama4_config(vocab_size=len(tokenizer), hidden_size=32, num_layers=2, num_experts=4,
                                intermediate_size=64, pad_token_id=tokenizer.pad_token_id,
                                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    return config


def write_checkpoint(folder: Path, kind: str = "causal", seed: int = 0, shard_size: str = "60KB") -> torch.nn.Module:
    """Save a random tiny `Llama4ForCausalLM` ("causal") or `Llama4ForConditionalGeneration`
    ("conditional") + tokenizer to `folder`, sharded so there is an index; returns the model."""
    tokenizer = tiny_tokenizer()
    text = tiny_text_config(tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "causal":
            model = Llama4ForCausalLM(text)
        elif kind == "conditional":
            vision = Llama4VisionConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                        intermediate_size=64, image_size=28, patch_size=14, vision_output_dim=32,
                                        projector_input_dim=32, projector_output_dim=32)
            model = Llama4ForConditionalGeneration(Llama4Config(vision_config=vision.to_dict(),
                                                                text_config=text.to_dict()))
        else:
            raise ValueError(kind)
    model.save_pretrained(str(folder), max_shard_size=shard_size)
    tokenizer.save_pretrained(str(folder))
    return model
