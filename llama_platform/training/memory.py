"""The memory plan: what a LoRA fine-tune of a Llama 4 config needs per GPU, by method.

    python -m llama_platform.training.memory      # prints the README's table and its arithmetic

Arithmetic, not measurement (the measured figures are benchmarks/train_throughput.py's). Every
term is a count of numbers times bytes per number:

- weights: bf16 = 2 B/param. QLoRA stores every Linear weight in the decoder layers (attention,
  dense MLPs, shared and routed experts: transformers splits the fused experts into Linear
  layers for bitsandbytes) as NF4 with double-quantized scales = 4 + 8/64 + 32/(64*256) = 4.127
  bits/param; embeddings, lm_head, router and norms stay bf16. ZeRO-3 keeps 1/N of the bf16
  weights per GPU plus the gathered working set: the largest module whole (a MoE layer's fused
  experts are one parameter each, so one module) plus the prefetch bucket ("auto" = 0.9*H^2).
- LoRA: r*(in+out) per adapted Linear; fp32 weight + fp32 grad + Adam's two fp32 moments =
  16 B/param (ZeRO-3: divided by N).
- activations, bf16, per token per layer, what autograd keeps for the backward pass:
  attention 2*(3H + (q+k+v) + (q+k after RoPE) + attn out), each FFN of width I 2*(H + 4I)
  (input, gate, up, act(gate), act*up); a MoE layer runs its shared expert and top-k routed
  experts (routed-only MoE), or all E experts (transformers' reference MoE). With gradient
  checkpointing only each layer's input (2H) is kept, plus one layer's activations while it is
  recomputed. Per micro-batch of T tokens (one packed row); sdpa/flex attention keep no T^2 term.
- logits: (targets)*V*(2 + 4 + 4) B (bf16 logits, their fp32 upcast for the loss, the fp32
  gradient). The recipe's loss (loss.py) computes logits only where there is a target: the
  response tokens, about 2% of an issue's tokens (a few label tokens after a ~350-token prompt);
  a plain `model(**batch).loss` would pay for all T tokens.
- overhead: 2 GB assumed per GPU (CUDA context, cuBLAS workspace, allocator slack).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GB = 1e9
NF4_BITS = 4 + 8 / 64 + 32 / (64 * 256)
OVERHEAD_BYTES = 2 * GB

# Text configs (Llama4TextConfig field names) of the models in the README table.
PRESETS: dict[str, dict[str, Any]] = {
    "Llama 4 Scout 17B-16E": dict(
        hidden_size=5120, num_hidden_layers=48, num_attention_heads=40, num_key_value_heads=8, head_dim=128,
        num_local_experts=16, num_experts_per_tok=1, interleave_moe_layer_step=1,
        intermediate_size=8192, intermediate_size_mlp=16384, vocab_size=202048, tie_word_embeddings=False,
    ),
    "Llama 4 Maverick 17B-128E": dict(
        hidden_size=5120, num_hidden_layers=48, num_attention_heads=40, num_key_value_heads=8, head_dim=128,
        num_local_experts=128, num_experts_per_tok=1, interleave_moe_layer_step=2,
        intermediate_size=8192, intermediate_size_mlp=16384, vocab_size=202048, tie_word_embeddings=False,
    ),
    # The benchmark's anchor (issue 8): about 2.5B parameters.
    "anchor 2.5B": dict(
        hidden_size=2048, num_hidden_layers=16, num_attention_heads=16, num_key_value_heads=8, head_dim=128,
        num_local_experts=8, num_experts_per_tok=1, interleave_moe_layer_step=2,
        intermediate_size=4096, intermediate_size_mlp=8192, vocab_size=32000, tie_word_embeddings=False,
    ),
}


@dataclass(frozen=True)
class Shape:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    experts: int
    top_k: int
    moe_step: int
    expert_ffn: int
    dense_ffn: int
    vocab: int
    tied: bool

    @classmethod
    def of(cls, config: Any) -> "Shape":
        get = config.get if isinstance(config, dict) else (lambda k, d=None: getattr(config, k, d))
        hidden, heads = get("hidden_size"), get("num_attention_heads")
        return cls(
            hidden=hidden, layers=get("num_hidden_layers"), heads=heads,
            kv_heads=get("num_key_value_heads"), head_dim=get("head_dim") or hidden // heads,
            experts=get("num_local_experts"), top_k=get("num_experts_per_tok", 1),
            moe_step=get("interleave_moe_layer_step", 1) or 1,
            expert_ffn=get("intermediate_size"), dense_ffn=get("intermediate_size_mlp"),
            vocab=get("vocab_size"), tied=bool(get("tie_word_embeddings", False)),
        )

    @property
    def moe_layers(self) -> int:
        # transformers: layer i is MoE when (i + 1) % step == 0
        return self.layers // self.moe_step

    @property
    def dense_layers(self) -> int:
        return self.layers - self.moe_layers

    @property
    def attention_params(self) -> int:
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        return self.hidden * (q + 2 * kv) + q * self.hidden

    def ffn_params(self, width: int) -> int:
        return 3 * self.hidden * width

    @property
    def routed_expert_params_per_layer(self) -> int:
        return self.experts * self.ffn_params(self.expert_ffn)

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied else 2)

    @property
    def linear_params(self) -> int:
        """Every Linear weight inside the decoder layers (what QLoRA quantizes)."""
        moe = self.attention_params + self.ffn_params(self.expert_ffn) + self.routed_expert_params_per_layer
        dense = self.attention_params + self.ffn_params(self.dense_ffn)
        return self.moe_layers * moe + self.dense_layers * dense

    @property
    def other_params(self) -> int:
        """Embeddings, lm_head, routers and norms (kept bf16 by QLoRA)."""
        norms = self.layers * 2 * self.hidden + self.hidden  # qk_norm (an L2 norm) has no weights
        return self.embedding_params + self.moe_layers * self.hidden * self.experts + norms

    @property
    def total_params(self) -> int:
        return self.linear_params + self.other_params

    @property
    def active_params(self) -> int:
        """Parameters one token's forward pass multiplies with (embedding lookup excluded)."""
        moe = self.attention_params + self.ffn_params(self.expert_ffn) * (1 + self.top_k)
        dense = self.attention_params + self.ffn_params(self.dense_ffn)
        return self.moe_layers * moe + self.dense_layers * dense + self.vocab * self.hidden

    @property
    def largest_module_params(self) -> int:
        """The biggest single module ZeRO-3 must gather whole: a MoE layer's fused experts."""
        if self.moe_layers:
            return max(self.routed_expert_params_per_layer, self.vocab * self.hidden)
        return max(self.ffn_params(self.dense_ffn), self.vocab * self.hidden)

    def lora_params(self, r: int, mlp: bool = True) -> int:
        q, kv, h = self.heads * self.head_dim, self.kv_heads * self.head_dim, self.hidden
        attention = r * ((h + q) + 2 * (h + kv) + (q + h))
        per_ffn = lambda width: r * (2 * (h + width) + (width + h))  # noqa: E731
        total = self.layers * attention
        if mlp:
            total += self.moe_layers * per_ffn(self.expert_ffn) + self.dense_layers * per_ffn(self.dense_ffn)
        return total

    def activation_bytes_per_token_layer(self, moe: bool, routed_moe: bool) -> float:
        """bf16 bytes autograd keeps per token in one layer (no checkpointing)."""
        h, q, kv = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim
        attention = 3 * h + (q + 2 * kv) + (q + kv) + q
        ffn = lambda width: h + 4 * width  # noqa: E731
        if moe:
            experts = self.top_k if routed_moe else self.experts
            mlp = ffn(self.expert_ffn) * (1 + experts) + self.experts
        else:
            mlp = ffn(self.dense_ffn)
        return 2 * (attention + mlp)

    def flops_per_token(self, context: float, full_finetune: bool = False) -> float:
        """Training FLOPs per token: forward 2*N_active + attention 4*L*c*q (c = mean attended
        length); the backward pass costs 1x forward for input gradients (LoRA: the base is frozen)
        plus 1x for weight gradients only when training every weight; attention backward is 2x."""
        matmul = 2 * self.active_params
        attention = 4 * self.layers * context * self.heads * self.head_dim
        return matmul * (3 if full_finetune else 2) + attention * 3


@dataclass(frozen=True)
class MemoryPlan:
    model: str
    method: str
    gpus: int
    weights: float
    lora: float
    activations: float
    activations_no_ckpt: float
    logits: float
    overhead: float

    @property
    def total(self) -> float:
        return self.weights + self.lora + self.activations + self.logits + self.overhead

    @property
    def total_no_ckpt(self) -> float:
        return self.weights + self.lora + self.activations_no_ckpt + self.logits + self.overhead


def memory_plan(
    config: Any,
    method: str,
    gpus: int = 1,
    tokens_per_micro_batch: int = 4096,
    lora_r: int = 16,
    lora_mlp: bool = True,
    routed_moe: bool | None = None,
    model: str = "",
    target_fraction: float = 0.02,
) -> MemoryPlan:
    """Bytes per GPU of LoRA fine-tuning `config` (a Llama4TextConfig or its dict) by `method`:
    "qlora" (one GPU), "lora" (bf16, each GPU holds the whole model), "lora_zero3" (sharded).

    `routed_moe` None: routed-only MoE except under QLoRA, whose per-expert 4-bit Linear layers
    (transformers' SequentialLlama4TextExperts) run every expert on every token."""
    s = Shape.of(config)
    if routed_moe is None:
        routed_moe = method != "qlora"
    if method == "qlora":
        if gpus != 1:
            raise ValueError("QLoRA here is the one-GPU method; use lora_zero3 for several GPUs")
        weights = s.linear_params * NF4_BITS / 8 + s.other_params * 2
        shard = 1
    elif method == "lora":
        weights, shard = s.total_params * 2, 1
    elif method == "lora_zero3":
        gathered = s.largest_module_params + 0.9 * s.hidden**2
        weights, shard = s.total_params * 2 / gpus + gathered * 2, gpus
    else:
        raise ValueError(f"unknown method {method!r}")
    lora = s.lora_params(lora_r, lora_mlp) * 16 / shard
    t = tokens_per_micro_batch
    per_layer = [s.activation_bytes_per_token_layer((i + 1) % s.moe_step == 0, routed_moe) for i in range(s.layers)]
    no_ckpt = t * sum(per_layer)
    ckpt = t * (s.layers * 2 * s.hidden + max(per_layer))
    logits = t * target_fraction * s.vocab * (2 + 4 + 4)
    return MemoryPlan(model=model, method=method, gpus=gpus, weights=weights / GB, lora=lora / GB,
                      activations=ckpt / GB, activations_no_ckpt=no_ckpt / GB, logits=logits / GB,
                      overhead=OVERHEAD_BYTES / GB)


# (model, method, GPUs) rows of the README table.
TABLE_ROWS = [
    ("Llama 4 Scout 17B-16E", "qlora", 1),
    ("Llama 4 Scout 17B-16E", "lora_zero3", 4),
    ("Llama 4 Scout 17B-16E", "lora_zero3", 8),
    ("Llama 4 Maverick 17B-128E", "qlora", 1),
    ("Llama 4 Maverick 17B-128E", "lora_zero3", 16),
    ("Llama 4 Maverick 17B-128E", "lora_zero3", 32),
    ("anchor 2.5B", "lora", 1),
    ("anchor 2.5B", "qlora", 1),
    ("anchor 2.5B", "lora_zero3", 2),
]


def markdown_table(tokens_per_micro_batch: int = 4096, lora_r: int = 16) -> str:
    lines = [
        f"Per GPU, GB (1e9 B); LoRA r={lora_r} on attention + dense/shared-expert MLPs; routed-only MoE "
        f"(QLoRA: all experts, see below); "
        f"one micro-batch of {tokens_per_micro_batch} packed tokens; `python -m llama_platform.training.memory`.",
        "",
        "| model | params (total / active) | method | GPUs | weights | LoRA + grads + Adam | activations (ckpt / no ckpt) "
        "| logits | total, checkpointing | total, no checkpointing |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, method, gpus in TABLE_ROWS:
        shape = Shape.of(PRESETS[name])
        p = memory_plan(PRESETS[name], method, gpus, tokens_per_micro_batch, lora_r, model=name)
        lines.append(
            f"| {name} | {shape.total_params / 1e9:.1f}B / {shape.active_params / 1e9:.1f}B | {method} | {gpus} "
            f"| {p.weights:.1f} | {p.lora:.2f} | {p.activations:.1f} / {p.activations_no_ckpt:.1f} "
            f"| {p.logits:.2f} | **{p.total:.1f}** | {p.total_no_ckpt:.1f} |"
        )
    return "\n".join(lines)


def arithmetic(name: str = "Llama 4 Scout 17B-16E", tokens: int = 4096, lora_r: int = 16) -> str:
    """One model's terms written out, for the README."""
    s = Shape.of(PRESETS[name])
    q = memory_plan(PRESETS[name], "qlora", 1, tokens, lora_r)
    return "\n".join([
        f"{name}: decoder Linear weights {s.linear_params / 1e9:.2f}B (routed experts "
        f"{s.moe_layers} layers x {s.experts} x 3 x {s.hidden} x {s.expert_ffn} = "
        f"{s.moe_layers * s.routed_expert_params_per_layer / 1e9:.2f}B), other (embeddings, head, routers, norms) "
        f"{s.other_params / 1e9:.2f}B.",
        f"QLoRA weights = {s.linear_params / 1e9:.2f}B x {NF4_BITS:.3f}/8 B + {s.other_params / 1e9:.2f}B x 2 B "
        f"= {q.weights:.1f} GB; LoRA r={lora_r}: {s.lora_params(lora_r) / 1e6:.1f}M params x 16 B = {q.lora:.2f} GB;",
        f"checkpointed activations = {tokens} tokens x ({s.layers} layers x 2 x {s.hidden} B + one layer's "
        f"{max(s.activation_bytes_per_token_layer(True, True), s.activation_bytes_per_token_layer(False, True)) / 1e3:.0f} kB) "
        f"= {q.activations:.1f} GB (QLoRA: every expert runs); logits = 2% of {tokens} tokens (the response) x {s.vocab} x 10 B "
        f"= {q.logits:.2f} GB; overhead 2 GB.",
        f"ZeRO-3 on N GPUs: {s.total_params / 1e9:.1f}B x 2 B / N + (largest module "
        f"{s.largest_module_params / 1e9:.2f}B params, one MoE layer's fused experts, + prefetch 0.9 x {s.hidden}^2) x 2 B.",
    ])


if __name__ == "__main__":
    print(markdown_table())
    print()
    for model_name in PRESETS:
        print(arithmetic(model_name))
        print()
