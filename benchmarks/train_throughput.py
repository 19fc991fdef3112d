"""Training throughput: the plain transformers + peft baseline against the platform trainer.

    .venv/bin/python benchmarks/train_throughput.py --preset tiny     # CPU, a few minutes
    python benchmarks/train_throughput.py --preset anchor --check     # one CUDA GPU (H100/H200)

One process, the same data for both: a pool of synthetic issue-like examples (token counts
log-normal, median 350, capped at 2048; the last 8-32 tokens are the response, the rest prompt),
and one epoch over it per trainer, from the same random-init model with LoRA r=16 on q/k/v/o:

  baseline  plain transformers + peft: dynamic padding (batch 8, shuffled), sdpa, transformers'
            Llama 4 MoE (every expert on every token), `model(**batch).loss` over full logits;
  platform  what llama_platform.training uses: rows packed to seq_len (packing.pack_examples)
            with document masking (compiled flex attention on CUDA; on CPU, which has no flex
            backward, causal sdpa per document: attention.py),
            routed-only MoE (moe.use_routed_experts: grouped_mm on CUDA bf16), and logits only at
            response tokens (loss.response_loss). Gradient checkpointing is off unless asked for.

Prints, per trainer, real (non-pad) tokens/s over the timed steps (the first --warmup steps,
which include compilation, are not timed), peak memory (CUDA: torch.cuda.max_memory_allocated;
CPU: peak resident memory above the level before the trainer started, sampled every 5 ms) and the
mean loss, then `speedup` = platform / baseline tokens/s (on CPU also by process CPU time, which
other load on shared cores does not distort). `--ablations` adds platform variants that each drop
one part, to show where the speed comes from. `--check` first verifies, in fp32 on the device,
that the platform's kernels compute what the reference does. `--json PATH` writes the figures.

Presets: `anchor` is the Llama 4 text config of issue 8 (hidden 2048, 16 layers, 16 heads / 8 KV
heads, head_dim 128, 8 experts top-1, MoE every 2nd layer, expert FFN 4096, dense FFN 8192, vocab
32000; ~2.5B parameters) in bf16; `tiny` keeps its shape (8 experts top-1, MoE every 2nd layer,
FFN widths 2x / 4x hidden, GQA 2:1, the output head's share of the FLOPs) at hidden 128 in fp32.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import math
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llama_platform.training.batching import IGNORE_INDEX, Encoded, collate  # noqa: E402
from llama_platform.training.loss import response_loss  # noqa: E402
from llama_platform.training.moe import use_routed_experts  # noqa: E402
from llama_platform.training.packing import collate_packed, enable_document_masking, pack_examples  # noqa: E402

PRESETS: dict[str, dict[str, Any]] = {
    "anchor": dict(
        hidden_size=2048, num_layers=16, num_heads=16, num_kv_heads=8, head_dim=128, expert_ffn=4096,
        dense_ffn=8192, vocab_size=32000, dtype="bfloat16", seq_len=8192, rows_per_step=1, examples=800,
        warmup=3,
    ),
    "tiny": dict(
        hidden_size=128, num_layers=8, num_heads=4, num_kv_heads=2, head_dim=32, expert_ffn=256,
        dense_ffn=512, vocab_size=2000, dtype="float32", seq_len=2048, rows_per_step=2, examples=96,
        warmup=2,
    ),
}
BASELINE_BATCH = 8
MEDIAN_TOKENS, SIGMA, MAX_TOKENS = 350, 0.8, 2048
RESPONSE_TOKENS = (8, 32)
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]
PAD_ID = 0


@dataclass
class TrainerSpec:
    name: str
    packing: bool = True
    routed_experts: bool = True
    response_logits: bool = True
    doc_masking: bool = True


BASELINE = TrainerSpec("baseline", packing=False, routed_experts=False, response_logits=False, doc_masking=False)
PLATFORM = TrainerSpec("platform")
ABLATIONS = [
    TrainerSpec("platform, full-logits loss", response_logits=False),
    TrainerSpec("platform, all experts", routed_experts=False),
    TrainerSpec("packing only", routed_experts=False, response_logits=False),
]


@dataclass
class Result:
    name: str
    steps: int
    timed_steps: int
    real_tokens: int
    padded_tokens: int
    seconds: float
    tokens_per_s: float
    cpu_seconds: float  # process CPU time over the timed steps (robust to other load on shared cores)
    tokens_per_cpu_s: float
    peak_memory_gib: float
    mean_loss: float
    extra: dict[str, Any] = field(default_factory=dict)


def issue_like_examples(n: int, vocab_size: int, seed: int) -> list[Encoded]:
    """Synthetic token ids with issue-like lengths: log-normal (median 350), 40..2048 tokens."""
    generator = torch.Generator().manual_seed(seed)
    normal = torch.randn(n, generator=generator, dtype=torch.float64)
    lengths = (math.log(MEDIAN_TOKENS) + SIGMA * normal).exp().round().clamp(40, MAX_TOKENS).long().tolist()
    examples = []
    for length in lengths:
        ids = [1] + torch.randint(3, vocab_size, (length - 1,), generator=generator).tolist()
        response = int(torch.randint(RESPONSE_TOKENS[0], RESPONSE_TOKENS[1] + 1, (1,), generator=generator))
        examples.append(Encoded(ids, [IGNORE_INDEX] * (length - response) + ids[length - response :]))
    return examples


def build_config(preset: dict[str, Any]):
    from transformers import Llama4TextConfig

    config = Llama4TextConfig(
        vocab_size=preset["vocab_size"],
        hidden_size=preset["hidden_size"],
        intermediate_size=preset["expert_ffn"],
        intermediate_size_mlp=preset["dense_ffn"],
        num_hidden_layers=preset["num_layers"],
        num_attention_heads=preset["num_heads"],
        num_key_value_heads=preset["num_kv_heads"],
        head_dim=preset["head_dim"],
        num_local_experts=8,
        num_experts_per_tok=1,
        interleave_moe_layer_step=2,
        max_position_embeddings=max(8192, preset["seq_len"]),
        pad_token_id=PAD_ID,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
        use_cache=False,
    )
    config._attn_implementation = "sdpa"
    return config


def build_model(config, dtype: torch.dtype, device: torch.device, seed: int) -> torch.nn.Module:
    """The same random-init weights for every trainer (same seed), built on the device in `dtype`."""
    from peft import LoraConfig, get_peft_model
    from transformers import Llama4ForCausalLM

    # A private RNG state (the caller's is untouched); on CUDA the device's generator is forked too.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], device_type="cuda"):
        torch.manual_seed(seed)
        with device:
            model = Llama4ForCausalLM._from_config(config, dtype=dtype)
        lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=LORA_TARGETS, task_type="CAUSAL_LM")
        return get_peft_model(model, lora)


class PeakMemory:
    """Peak memory of one trainer: CUDA allocator peak, or sampled resident memory above the start."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            _release_free_heap()
            self._start = _rss()
            self.peak = self._start
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, _rss()) - self._start

    @property
    def gib(self) -> float:
        return self.peak / 2**30


def _release_free_heap() -> None:
    """Hand freed heap back to the OS, so a trainer's peak is not hidden by the previous one's."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the figure may under-count
        pass


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def batches_for(spec: TrainerSpec, examples: list[Encoded], seq_len: int, rows_per_step: int, seed: int):
    """(batch, real tokens) per step: one epoch over `examples`, in a seeded shuffled order."""
    generator = torch.Generator().manual_seed(seed)
    if not spec.packing:
        order = torch.randperm(len(examples), generator=generator).tolist()
        for start in range(0, len(order), BASELINE_BATCH):
            chunk = [examples[i] for i in order[start : start + BASELINE_BATCH]]
            yield collate(chunk, PAD_ID), sum(len(e.input_ids) for e in chunk)
        return
    rows = pack_examples(examples, seq_len)
    order = torch.randperm(len(rows), generator=generator).tolist()
    for start in range(0, len(order), rows_per_step):
        chunk = [[examples[i] for i in rows[r]] for r in order[start : start + rows_per_step]]
        yield collate_packed(chunk, PAD_ID, pad_to=seq_len), sum(len(e.input_ids) for row in chunk for e in row)


def run_trainer(
    spec: TrainerSpec,
    config,
    examples: list[Encoded],
    args: argparse.Namespace,
    device: torch.device,
    dtype: torch.dtype,
    log: Callable[[str], None],
) -> Result:
    with PeakMemory(device) as memory:
        model = build_model(config, dtype, device, args.seed)
        if spec.routed_experts:
            use_routed_experts(model)
        attention = enable_document_masking(model) if spec.doc_masking else "sdpa"
        if not spec.doc_masking:
            model.get_base_model().set_attn_implementation("sdpa")
        if args.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.train()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

        steps = timed_steps = real = padded = 0
        losses: list[float] = []
        started = None
        for batch, real_tokens in batches_for(spec, examples, args.seq_len, args.rows_per_step, args.seed):
            if steps == args.warmup:
                _sync(device)
                started, cpu_started = time.perf_counter(), time.process_time()
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            if spec.response_logits:
                loss, _ = response_loss(model, batch)
            else:
                loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.detach())
            steps += 1
            if started is not None:
                timed_steps += 1
                real += real_tokens
                padded += batch["input_ids"].numel()
        _sync(device)
        seconds = time.perf_counter() - started if started is not None else 0.0
        cpu_seconds = time.process_time() - cpu_started if started is not None else 0.0
        if timed_steps == 0:
            raise ValueError(f"{spec.name}: {steps} steps, none timed (warmup {args.warmup}): use more --examples")
        loss_values = torch.stack(losses).float().cpu()
        if not torch.isfinite(loss_values).all():
            raise FloatingPointError(f"{spec.name}: non-finite loss")
        del model, optimizer, batch, loss
        gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    result = Result(
        name=spec.name, steps=steps, timed_steps=timed_steps, real_tokens=real, padded_tokens=padded,
        seconds=round(seconds, 3), tokens_per_s=round(real / seconds, 1),
        cpu_seconds=round(cpu_seconds, 3), tokens_per_cpu_s=round(real / cpu_seconds, 1),
        peak_memory_gib=round(memory.gib, 3),
        mean_loss=round(float(loss_values.mean()), 4), extra={"attention": attention, **asdict(spec)},
    )
    log(
        f"{spec.name:>28}: {result.tokens_per_s:>10,.0f} real tokens/s  "
        f"(real/padded {real / padded:.0%}, {timed_steps} timed steps, {seconds:.1f} s)  "
        + (f"{result.tokens_per_cpu_s:,.0f} per CPU-s  " if device.type == "cpu" else "")
        + f"peak memory {result.peak_memory_gib:.2f} GiB  mean loss {result.mean_loss:.3f}  [{attention}]"
    )
    return result


def device_checks(device: torch.device, log: Callable[[str], None]) -> dict[str, float]:
    """Correctness on this device before timing (the CPU test suite cannot reach the CUDA kernels):
    in fp32, routed-only MoE equals transformers' MoE (forward and gradients); the grouped_mm
    kernel (bf16) agrees with the per-expert loop; and a packed, document-masked row (the
    implementation enable_document_masking picks here: flex attention on CUDA) gives each issue's
    logits and LoRA gradients as the issues run alone. Raises AssertionError on a mismatch."""
    from peft import LoraConfig, get_peft_model
    from transformers import Llama4ForCausalLM, Llama4TextConfig

    config = Llama4TextConfig(
        vocab_size=512, hidden_size=128, intermediate_size=128, intermediate_size_mlp=256, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, head_dim=32, num_local_experts=8, num_experts_per_tok=1,
        interleave_moe_layer_step=2, pad_token_id=PAD_ID, use_cache=False, tie_word_embeddings=False,
    )
    config._attn_implementation = "sdpa"
    figures: dict[str, float] = {}
    torch.manual_seed(0)
    with device:
        model = Llama4ForCausalLM._from_config(config, dtype=torch.float32)
    block = model.model.layers[1].feed_forward
    routed = copy.deepcopy(block)
    use_routed_experts(routed)
    x = torch.randn(300, 128, device=device)
    want, _ = block(x)
    got, _ = routed(x)
    want.square().sum().backward()
    got.square().sum().backward()
    figures["moe_fp32_max_abs_diff"] = (got - want).abs().max().item()
    figures["moe_fp32_grad_max_abs_diff"] = max(
        (a.grad - b.grad).abs().max().item() for a, b in zip(routed.parameters(), block.parameters())
    )
    assert figures["moe_fp32_max_abs_diff"] < 1e-5 and figures["moe_fp32_grad_max_abs_diff"] < 1e-4, figures

    loop = copy.deepcopy(routed).to(torch.bfloat16)
    use_routed_experts(loop, kernel="loop")
    grouped = copy.deepcopy(loop)
    use_routed_experts(grouped, kernel="grouped_mm")
    xb = x.to(torch.bfloat16)
    figures["moe_grouped_mm_vs_loop_bf16"] = (grouped(xb)[0] - loop(xb)[0]).float().abs().max().item()
    assert figures["moe_grouped_mm_vs_loop_bf16"] < 5e-2, figures

    use_routed_experts(model)
    lora = get_peft_model(model, LoraConfig(r=8, target_modules=LORA_TARGETS, init_lora_weights=False))
    examples = issue_like_examples(12, 512, seed=1)
    # Keep them small: <s> and the last 199 tokens (the response is at the end).
    examples = [Encoded(e.input_ids[:1] + e.input_ids[-199:], e.labels[:1] + e.labels[-199:]) for e in examples]
    rows = pack_examples(examples, 1024)
    implementation = enable_document_masking(lora)
    batch = {k: v.to(device) for k, v in collate_packed([[examples[i] for i in r] for r in rows], PAD_ID).items()}
    packed_loss, _ = response_loss(lora, batch)
    packed_loss.backward()
    packed_grads = [p.grad.clone() for p in lora.parameters() if p.requires_grad]
    lora.zero_grad()
    packed_logits = lora(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits.detach()
    enable_document_masking(lora, "sdpa")
    total, count, worst = 0.0, 0, 0.0
    for r, row in enumerate(rows):
        start = 0
        for i in row:
            e = examples[i]
            logits = lora(input_ids=torch.tensor([e.input_ids], device=device)).logits[0]
            worst = max(worst, (logits - packed_logits[r, start : start + len(e.input_ids)]).abs().max().item())
            targets = torch.tensor(e.labels[1:], device=device)
            total = total + F.cross_entropy(logits[:-1], targets, ignore_index=IGNORE_INDEX, reduction="sum")
            count += int((targets != IGNORE_INDEX).sum())
            start += len(e.input_ids)
    (total / count).backward()
    figures[f"packed_{implementation}_logits_max_abs_diff"] = worst
    figures[f"packed_{implementation}_grad_max_abs_diff"] = max(
        (a - p.grad).abs().max().item() for a, p in zip(packed_grads, (p for p in lora.parameters() if p.requires_grad))
    )
    assert worst < 1e-4 and figures[f"packed_{implementation}_grad_max_abs_diff"] < 1e-4, figures
    log("device checks passed: " + ", ".join(f"{k} {v:.2e}" for k, v in figures.items()))
    return figures


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv: list[str] | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--examples", type=int, help="size of the example pool (one epoch per trainer)")
    parser.add_argument("--seq-len", type=int, help="packed row length (>= 2048, the longest issue)")
    parser.add_argument("--rows-per-step", type=int, help="packed rows per optimizer step")
    parser.add_argument("--warmup", type=int, help="untimed first steps per trainer")
    parser.add_argument("--hidden-size", type=int, help="override the preset's width (keeps FFN ratios)")
    parser.add_argument("--layers", type=int, help="override the preset's layer count")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--ablations", action="store_true", help="also run platform variants missing one part")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (the 2 cores here are shared)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", action="store_true", help="first check correctness on this device (fp32)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)

    preset = dict(PRESETS[args.preset])
    if args.hidden_size:
        scale = args.hidden_size / preset["hidden_size"]
        preset.update(hidden_size=args.hidden_size, head_dim=args.hidden_size // preset["num_heads"],
                      expert_ffn=int(preset["expert_ffn"] * scale), dense_ffn=int(preset["dense_ffn"] * scale))
    if args.layers:
        preset["num_layers"] = args.layers
    for key in ("examples", "seq_len", "rows_per_step", "warmup"):
        if getattr(args, key) is None:
            setattr(args, key, preset[key])
    if args.seq_len < MAX_TOKENS:
        parser.error(f"--seq-len must be >= {MAX_TOKENS} (the longest issue)")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    dtype = getattr(torch, preset["dtype"])
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    checks = device_checks(device, log) if args.check else None
    config = build_config(preset)
    examples = issue_like_examples(args.examples, preset["vocab_size"], args.seed)
    lengths = sorted(len(e.input_ids) for e in examples)
    params = sum(p.numel() for p in build_model(config, dtype, torch.device("meta"), 0).parameters())
    log(
        f"preset {args.preset}: {params / 1e9:.2f}B params ({preset['dtype']}), device {device}"
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else f", {args.threads} thread(s)")
        + f"; {len(examples)} examples, {sum(lengths):,} tokens, median {lengths[len(lengths) // 2]}, "
        f"max {lengths[-1]}; baseline batch {BASELINE_BATCH}; platform rows of {args.seq_len} x {args.rows_per_step}"
    )

    specs = [BASELINE, PLATFORM] + (ABLATIONS if args.ablations else [])
    results = {spec.name: run_trainer(spec, config, examples, args, device, dtype, log) for spec in specs}
    baseline = results["baseline"]
    speedups = {name: round(r.tokens_per_s / baseline.tokens_per_s, 2)
                for name, r in results.items() if name != "baseline"}
    log(f"speedup = platform / baseline = {speedups['platform']:.2f}x")
    if device.type == "cpu":
        cpu_speedups = {name: round(r.tokens_per_cpu_s / baseline.tokens_per_cpu_s, 2) for name, r in results.items()
                        if name != "baseline"}
        log(f"  (by process CPU time, robust to other load on the cores: {cpu_speedups['platform']:.2f}x)")
    for name, value in speedups.items():
        if name != "platform":
            log(f"  {name}: {value:.2f}x baseline")
    report = {
        "preset": args.preset,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "params": params,
        "config": {**preset, **{k: getattr(args, k) for k in ("examples", "seq_len", "rows_per_step", "warmup")},
                   "gradient_checkpointing": args.gradient_checkpointing, "threads": args.threads},
        "results": {name: asdict(r) for name, r in results.items()},
        "speedup": speedups["platform"],
        "speedups": speedups,
        "device_checks": checks,
    }
    if device.type == "cpu":
        report["cpu_time_speedups"] = cpu_speedups
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
