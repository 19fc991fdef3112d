"""The micro-batcher in-process: concurrent requests share model calls, answers go back to the
right request, errors reach every waiter, and the queue bound sheds load."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from llama_platform.serving.triage import MicroBatcher, Overloaded, ServiceLimits, TriageService


class Recorder:
    def __init__(self, delay_s: float = 0.05, fail: bool = False):
        self.calls: list[list[str]] = []
        self.delay_s, self.fail = delay_s, fail
        self.active = self.peak = 0
        self._lock = threading.Lock()

    def __call__(self, prompts: list[str]) -> list[dict]:
        with self._lock:
            self.calls.append(list(prompts))
            self.active += 1
            self.peak = max(self.peak, self.active)
        time.sleep(self.delay_s)
        with self._lock:
            self.active -= 1
        if self.fail:
            raise RuntimeError("model exploded")
        return [{"echo": p} for p in prompts]


def test_concurrent_requests_share_calls_and_get_their_own_answers():
    model = Recorder()

    async def run():
        batcher = MicroBatcher(model, max_batch=8, max_wait_s=0.02)
        return await asyncio.gather(*[batcher.submit([f"p{i}a", f"p{i}b"]) for i in range(8)])

    answers = asyncio.run(run())
    assert answers == [[{"echo": f"p{i}a"}, {"echo": f"p{i}b"}] for i in range(8)]
    assert len(model.calls) < 8 and max(len(c) for c in model.calls) == 8  # full batches, never more
    assert all(len(c) <= 8 for c in model.calls) and model.peak == 1


def test_a_failed_call_fails_every_request_in_it():
    async def run():
        batcher = MicroBatcher(Recorder(fail=True), max_batch=8, max_wait_s=0.02)
        return await asyncio.gather(*[batcher.submit(["x"]) for _ in range(3)], return_exceptions=True)

    results = asyncio.run(run())
    assert len(results) == 3 and all(isinstance(r, RuntimeError) for r in results)


def test_workers_run_batches_side_by_side():
    model = Recorder(delay_s=0.1)

    async def run():
        batcher = MicroBatcher(model, max_batch=2, max_wait_s=0.0, workers=2)
        return await asyncio.gather(*[batcher.submit(["x"]) for _ in range(8)])

    assert len(asyncio.run(run())) == 8 and model.peak == 2


def test_the_queue_bound_sheds_with_overloaded():
    class Slow:
        def predict(self, prompts):
            time.sleep(0.2)
            return [{"labels": ["bug"], "scores": {"bug": 1.0}} for _ in prompts]

    service = TriageService(model=Slow(), limits=ServiceLimits(max_queue=3, max_batch=8))
    service.load()
    inst = {"title": "t", "body": "", "repo": "a/b", "features": {}}

    async def run():
        return await asyncio.gather(*[service.predict([dict(inst)]) for _ in range(6)], return_exceptions=True)

    results = asyncio.run(run())
    shed = [r for r in results if isinstance(r, Overloaded)]
    assert len(shed) == 3 and all(r.retry_after >= 1 for r in shed)
    assert [r[0]["labels"] for r in results if not isinstance(r, Exception)] == [["bug"]] * 3
    with pytest.raises(Exception, match="at most"):
        asyncio.run(service.predict([dict(inst)] * 65))
