"""Load test of the real model server: micro-batching on vs off, 1, 4 and 16 concurrent clients.

    python benchmarks/serve_load.py [--model-dir DIR] [--requests 96] [--flat-cost-ms 50]

Trains a tiny Llama 4 triage model (as the tests do) unless --model-dir is given, then starts the
real server process (KServe + keys + predictor) twice on 127.0.0.1, batching on and batching off,
and drives each with asyncio httpx clients, each client sending its next request when the last is
answered. Every level sends the same number of requests. Prints throughput, p50/p95/p99 latency,
errors and dropped requests (sent - answered) per level, and
batched_ratio = batched / unbatched throughput at 16 clients (goal: >= 3, zero errors, zero dropped).

Both modes run the same workers (one model call per core on a CPU, --batch-workers to change it);
batching off is a batch of one request, so the ratio measures batching alone. Before the servers,
the model alone is timed in this process at batch 1 and at --max-batch: their ratio bounds what
batching can give on this device.

Measured on the 2-core shared CPU box (2026-11-30), zero errors and zero dropped:
- real tiny model: batched_ratio 1.77 (158.6 vs 89.6 req/s at 16 clients), model alone 6.2 ms/prompt
  at batch 1 and 4.6 at batch 32 (a 1.35x bound; the rest of the gain is less GIL contention per
  prompt). A CPU forward costs its tokens, so >= 3 is out of reach here whatever the batcher does.
  Per prompt the model is 3x cheaper at batch 1 (19 -> 6.2 ms) and 8x at batch 32 (38.7 -> 4.6 ms) since
  scoring caches the prompt and MoE layers run routed experts only (training/inference.py).
- flat-cost stand-in (--flat-cost-ms 20, a call costs the same at any batch size, as on a GPU):
  4.7 and 6.3: the batcher itself is not the limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llama_platform.serving.auth import hash_key, write_keys_file  # noqa: E402
from llama_platform.services import free_port, start_service, wait_http_ok  # noqa: E402

KEY = "lpk_bench_" + "7" * 24
MODEL = "llama4-triage"
LEVELS = (1, 4, 16)
WORDS = ("parser crash traceback segfault docs typo example feature flag option question how install "
         "config error timeout build windows linux release api endpoint cache memory leak slow").split()


def issue(rng: random.Random) -> dict:
    title = " ".join(rng.choices(WORDS, k=rng.randint(4, 10)))
    body = " ".join(rng.choices(WORDS, k=rng.randint(10, 60)))
    return {"title": title, "body": body, "repo": rng.choice(["acme/widgets", "octo/tools", "big/monorepo"])}


def train_tiny_model(root: Path) -> Path:
    from llama_platform.training.config import TrainConfig
    from llama_platform.training.train import train
    from llama_platform_tests.training.synthetic import write_synthetic_training_set

    config = TrainConfig(
        training_set_path=str(write_synthetic_training_set(root / "train.parquet", n=40)),
        output_dir=str(root / "out"), mlflow_tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        registered_model_name="triage-bench", max_steps=2, batch_size=4, vocab_size=400,
    )
    return Path(train(config, log=lambda _m: None, show_progress=False)["model_dir"])


def model_batch_gain(model_dir: Path, max_batch: int, rounds: int = 3) -> dict:
    """The model alone, in this process with one torch thread (as the server runs it): ms per prompt
    at batch 1 and at max_batch, interleaved. Their ratio bounds what batching can give on this device,
    since the rest of a request (HTTP, JSON, auth, features) is not batched."""
    import torch

    from llama_platform.training.inference import TriageModel
    from llama_platform.training.prompts import format_prompt

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = TriageModel.load(model_dir)
        rng = random.Random(11)
        prompts = sorted((format_prompt(**issue(rng), features=None) for _ in range(max_batch)), key=len)
        model.predict(prompts[:2])  # warm-up
        one, full = [], []
        for _ in range(rounds):
            t0 = time.perf_counter()
            for p in prompts:
                model.predict([p])
            one.append((time.perf_counter() - t0) / len(prompts))
            t0 = time.perf_counter()
            model.predict(prompts)
            full.append((time.perf_counter() - t0) / len(prompts))
    finally:
        torch.set_num_threads(threads)
    a, b = statistics.median(one), statistics.median(full)
    return {"ms_per_prompt_batch_1": round(a * 1000, 2), "ms_per_prompt_full_batch": round(b * 1000, 2),
            "gain": round(a / b, 3)}


def start_server(model_dir: Path | None, work: Path, batching: bool, args):
    keys = work / "keys.json"
    write_keys_file(keys, [{"id": "bench", "hash": hash_key(KEY), "scopes": ["admin"], "rate_per_s": 1e6, "burst": 1e6}])
    port = free_port()
    if model_dir is None:  # the flat-cost stand-in: a fixed delay per model call, whatever the batch size
        cmd = [sys.executable, "-m", "llama_platform_tests.serving.keyword_server", "--delay-ms", str(args.flat_cost_ms),
               "--rate-per-s", "1e6", "--burst", "1e6"]
    else:
        cmd = [sys.executable, "-m", "llama_platform.serving.server", "--model-dir", str(model_dir),
               "--host", "127.0.0.1", "--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)]
        if args.batch_workers:
            cmd += ["--batch-workers", str(args.batch_workers)]
    cmd += ["--name", MODEL, "--http-port", str(port), "--max-queue", "1024"]
    if not batching:
        cmd.append("--no-batching")
    name = "bench-batched" if batching else "bench-unbatched"
    proc = start_service(name, cmd, work / f"{name}.log",
                         env={"LLAMA_PLATFORM_API_KEY": "", "LLAMA_PLATFORM_SERVING_KEYS_FILE": str(keys)})
    url = f"http://127.0.0.1:{port}"
    wait_http_ok(f"{url}/v2/health/ready", proc, timeout=300)
    return proc, url


async def drive(url: str, clients: int, total: int, rng: random.Random) -> dict:
    payloads = [{"instances": [issue(rng)]} for _ in range(total)]
    latencies: list[float] = []
    errors: list[str] = []
    sent = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits, headers={"Authorization": f"Bearer {KEY}"}) as client:
        async def one_client():
            nonlocal sent
            while sent < total:
                body = payloads[sent]
                sent += 1
                t0 = time.perf_counter()
                try:
                    r = await client.post(f"{url}/v1/models/{MODEL}:predict", json=body)
                    ok = r.status_code == 200 and len(r.json()["predictions"]) == 1
                    if not ok:
                        errors.append(f"{r.status_code}")
                except httpx.HTTPError as exc:
                    errors.append(type(exc).__name__)
                    continue
                latencies.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*[one_client() for _ in range(clients)])
        wall = time.perf_counter() - t0
    answered = len(latencies)
    q = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [latencies[0]] * 99
    return {"clients": clients, "sent": sent, "answered": answered, "errors": len(errors),
            "dropped": sent - answered, "throughput": (answered - len(errors)) / wall,
            "p50_ms": q[49] * 1000, "p95_ms": q[94] * 1000, "p99_ms": q[98] * 1000}


def batch_totals(url: str) -> tuple[float, float]:
    """(prompts, model calls) so far, from the server's own /metrics."""
    text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
    s = float(re.search(r"^triage_batch_size_sum (\S+)", text, re.M).group(1))
    c = float(re.search(r"^triage_batch_size_count (\S+)", text, re.M).group(1))
    return s, c


def run_mode(model_dir: Path | None, work: Path, batching: bool, args) -> list[dict]:
    proc, url = start_server(model_dir, work, batching, args)
    try:
        rng = random.Random(7)  # the same requests in both modes
        asyncio.run(drive(url, 4, 16, rng))  # warm-up
        rows = []
        for clients in LEVELS:
            before = batch_totals(url)
            row = asyncio.run(drive(url, clients, args.requests, rng))
            after = batch_totals(url)
            row["mode"] = "batched" if batching else "unbatched"
            row["mean_batch"] = (after[0] - before[0]) / max(after[1] - before[1], 1)
            rows.append(row)
        return rows
    finally:
        proc.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", help="a trained triage model dir (default: train a tiny one)")
    p.add_argument("--requests", type=int, default=96, help="requests per concurrency level")
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--max-wait-ms", type=float, default=0.0)
    p.add_argument("--batch-workers", type=int, default=None,
                   help="model calls at once in both modes (default: the server's, one per core on a CPU)")
    p.add_argument("--flat-cost-ms", type=float, default=0.0,
                   help="instead of the real model, a stand-in whose every model call takes this long whatever "
                        "the batch size (what an accelerator looks like); shows the batcher's own effect")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="serve-load-"))
    if args.flat_cost_ms:
        model_dir = None
        print(f"model: flat-cost stand-in, {args.flat_cost_ms} ms per model call (NOT the real model)")
    else:
        model_dir = Path(args.model_dir) if args.model_dir else train_tiny_model(work)
        print(f"model: {model_dir} (tiny Llama 4 + LoRA on CPU, 1 torch thread per model call; "
              f"{args.batch_workers or 'one per core'} model call(s) at once in both modes)")
    gain = None
    if model_dir is not None:
        gain = model_batch_gain(model_dir, args.max_batch)
        print(f"model alone: {gain['ms_per_prompt_batch_1']} ms/prompt at batch 1, {gain['ms_per_prompt_full_batch']} "
              f"at batch {args.max_batch}: batching can give at most {gain['gain']:.2f}x on this device")
    rows = run_mode(model_dir, work, True, args) + run_mode(model_dir, work, False, args)
    print(f"{'mode':<10} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>6} "
          f"{'dropped':>7} {'batch':>6}")
    for r in rows:
        print(f"{r['mode']:<10} {r['clients']:>7} {r['throughput']:>8.1f} {r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} "
              f"{r['p99_ms']:>8.1f} {r['errors']:>6} {r['dropped']:>7} {r['mean_batch']:>6.1f}")
    at16 = {r["mode"]: r for r in rows if r["clients"] == 16}
    ratio = at16["batched"]["throughput"] / at16["unbatched"]["throughput"]
    errors = sum(r["errors"] for r in rows)
    dropped = sum(r["dropped"] for r in rows)
    print("batch = mean prompts per model call at that level (from the server's triage_batch_size metric)")
    print(f"batched_ratio = {ratio:.2f} (batched / unbatched throughput at 16 clients; goal >= 3)")
    print(f"errors = {errors}, dropped = {dropped}")
    print(json.dumps({"batched_ratio": round(ratio, 3), "errors": errors, "dropped": dropped,
                      "model_batch_gain": gain["gain"] if gain else None}))
    return 0 if ratio >= 3 and errors == 0 and dropped == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
