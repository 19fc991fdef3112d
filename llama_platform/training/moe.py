"""Llama 4 MoE layers that run each token through its routed expert(s) only.

transformers' `Llama4TextMoe` (5.x) runs every token through every expert, with the inputs of the
experts it did not pick scaled to zero (the router's sigmoid of -inf): num_experts times the
routed FLOPs and activations. `use_routed_experts` swaps the class of each MoE block (and of its
experts) for a subclass that gathers the tokens of each expert and runs just those, with the same
maths (the routing weight scales the expert's *input*, as in the reference), the same parameters
and state-dict keys, and the same `(output, router_logits)` result.

Kernels: `torch.nn.functional.grouped_mm` (one grouped GEMM over all experts, torch's own MoE
kernel) where it supports training, i.e. bf16 weights on CUDA with compute capability >= 8.0;
elsewhere (CPU, fp32) a plain loop of one matmul per expert. transformers' own grouped-mm experts
path (`integrations.moe`) is not used: Llama 4's experts are not hooked into it, it scales expert
outputs rather than inputs (different maths for Llama 4), and on CPU with torch 2.13 its fp32
grouped_mm call fails under autograd.

peft: LoRA on the routed experts via `target_parameters` (experts.gate_up_proj / down_proj) wraps
the experts module in `ParamWrapper`s, which call the wrapped module with the extra routing
arguments inside a parametrization that makes `self.gate_up_proj` read W + B·A; so the routed
forward sees the adapted weights, whether peft wraps the model before or after this call.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from transformers.models.llama4.modeling_llama4 import Llama4TextExperts, Llama4TextMoe

Kernel = Literal["auto", "grouped_mm", "loop"]


class RoutedLlama4TextExperts(Llama4TextExperts):
    """Llama4TextExperts whose forward can take the routing and compute only routed tokens."""

    kernel: Kernel = "auto"

    def forward(  # type: ignore[override]
        self,
        hidden_states: torch.Tensor,
        top_k_index: torch.Tensor | None = None,
        top_k_weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if top_k_index is None:  # the reference layout (every expert, inputs pre-scaled)
            return super().forward(hidden_states)
        assert top_k_weights is not None
        num_tokens, top_k = top_k_index.shape
        # Read each weight once: under a peft parametrization every read would rebuild W + B·A.
        gate_up_proj, down_proj = self.gate_up_proj, self.down_proj

        # Sort the (token, slot) pairs by expert so each expert's tokens are contiguous.
        expert_ids = top_k_index.reshape(-1)
        order = torch.argsort(expert_ids, stable=True)
        routed_in = hidden_states[order // top_k] * top_k_weights.reshape(-1, 1)[order].to(hidden_states.dtype)
        # Not bincount: its output size depends on the data (a host sync on CUDA).
        tokens_per_expert = torch.zeros(self.num_experts, dtype=torch.long, device=expert_ids.device)
        tokens_per_expert.scatter_add_(0, expert_ids, torch.ones_like(expert_ids))

        if self._use_grouped_mm(gate_up_proj):
            offsets = torch.cumsum(tokens_per_expert, dim=0, dtype=torch.int32)
            gate, up = F.grouped_mm(routed_in, gate_up_proj, offs=offsets).chunk(2, dim=-1)
            routed_out = F.grouped_mm(up * self.act_fn(gate), down_proj, offs=offsets)
        else:
            outs = []
            start = 0
            for expert, count in enumerate(tokens_per_expert.tolist()):  # one host sync per layer
                if count:
                    gate, up = (routed_in[start : start + count] @ gate_up_proj[expert]).chunk(2, dim=-1)
                    outs.append((up * self.act_fn(gate)) @ down_proj[expert])
                    start += count
            routed_out = torch.cat(outs) if outs else routed_in.new_zeros((0, hidden_states.shape[-1]))

        # Back to (token, slot) order; summing the slots (not index_add_) stays deterministic on CUDA.
        unsorted = torch.empty_like(order)
        unsorted[order] = torch.arange(order.numel(), device=order.device)
        return routed_out[unsorted].view(num_tokens, top_k, -1).sum(dim=1)

    def _use_grouped_mm(self, weight: torch.Tensor) -> bool:
        if self.kernel != "auto":
            return self.kernel == "grouped_mm"
        return (
            weight.device.type == "cuda"
            and weight.dtype == torch.bfloat16
            and torch.cuda.get_device_capability(weight.device) >= (8, 0)
        )


class RoutedLlama4TextMoe(Llama4TextMoe):
    """Llama4TextMoe computing each token's routed expert(s) only, plus the shared expert."""

    def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        hidden_states = hidden_states.reshape(-1, self.hidden_dim)
        # The router's scores are sigmoid(logit) on its top-k experts and 0 elsewhere.
        router_scores, router_logits = self.router(hidden_states)
        top_k_index = torch.topk(router_logits, self.top_k, dim=1).indices  # the router's own choice
        top_k_weights = router_scores.gather(1, top_k_index)
        out = self.shared_expert(hidden_states)
        # `self.experts` may be a peft ParamWrapper around RoutedLlama4TextExperts: it passes the
        # extra arguments through.
        return out + self.experts(hidden_states, top_k_index, top_k_weights), router_logits


def use_routed_experts(model: torch.nn.Module, kernel: Kernel = "auto") -> int:
    """Make every Llama 4 MoE block of `model` (plain or peft-wrapped) compute only routed
    experts; returns how many blocks it converted (already converted ones included).

    `kernel`: "auto" (grouped_mm where it trains, else the loop), or force "grouped_mm" / "loop".
    """
    if kernel not in ("auto", "grouped_mm", "loop"):
        raise ValueError(f"unknown MoE kernel {kernel!r}")
    count = 0
    for module in model.modules():
        if not isinstance(module, Llama4TextMoe):
            continue
        module.__class__ = RoutedLlama4TextMoe
        experts = module.experts
        while not isinstance(experts, Llama4TextExperts):  # peft ParamWrappers, possibly nested
            base = getattr(experts, "base_layer", None)
            if base is None:
                raise TypeError(f"cannot find Llama4TextExperts inside {type(module.experts).__name__}")
            experts = base
        experts.__class__ = RoutedLlama4TextExperts
        experts.kernel = kernel
        count += 1
    return count
