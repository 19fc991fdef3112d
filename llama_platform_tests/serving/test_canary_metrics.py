"""The canary's PromQL (k8s/serving.py canary_queries) against what the servers really export.

No Prometheus can run here, so this evaluates the queries' own text: each selector (metric name and
label matchers) is applied to the samples scraped from a real server's /metrics, with the target
labels Prometheus adds in the cluster (namespace, pod), `increase`/`rate` as the difference between
two scrapes, and `histogram_quantile` as Prometheus computes it. Both runtimes (KServe and MLServer,
started as in production) get the same traffic; the figures go through the canary state machine."""

from __future__ import annotations

import asyncio
import math
import re

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llama_platform.k8s.serving import CanaryMetrics, CanaryPolicy, begin, canary_queries, step
from llama_platform.serving.auth import write_keys_file
from llama_platform_tests.serving.test_mlserver import start_mlserver, v2_body
from llama_platform_tests.serving.test_security import METRICS_TOKEN, MODEL, PREDICT_KEY, VALID, _start, entries

REVISION, NAMESPACE = "llama4-triage-predictor-00002", "serving"
# What Prometheus' Kubernetes service discovery attaches to every sample of the canary's pod.
TARGET = {"namespace": NAMESPACE, "pod": f"{REVISION}-deployment-6c9f7d8b5-x2x7q"}
SELECTOR = r"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\{(?P<matchers>[^}]*)\}\[(?P<window>\d+[smh])\]"
MATCHER = re.compile(r'(\w+)(=~|!~|!=|=)"((?:[^"\\]|\\.)*)"')
ISSUE = {"title": "Crash: a bug in the parser", "body": "Traceback ...", "repo": "acme/widgets"}
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Title: Docs typo"}], "metadata": {"repo": "a/b"}}


def scrape(url: str) -> dict[tuple, float]:
    """{(name, sorted labels incl. the target's): value} of one /metrics page, read as Prometheus reads
    it in the cluster: with the metrics-scope token the PodMonitors send."""
    r = httpx.get(url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=30)
    assert r.status_code == 200, r.text
    return {(s.name, tuple(sorted({**s.labels, **TARGET}.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def _matches(labels: dict, matchers: str) -> bool:
    for label, op, value in MATCHER.findall(matchers):
        have = labels.get(label, "")
        ok = {"=": have == value, "!=": have != value,
              "=~": re.fullmatch(value, have) is not None, "!~": re.fullmatch(value, have) is None}[op]
        if not ok:
            return False
    return True


def _delta(selector: re.Match, before: dict, after: dict) -> list[tuple[dict, float]]:
    """The increase of every series the selector picks (a series new in `after` started at 0)."""
    out = []
    for (name, labels), value in after.items():
        labels = dict(labels)
        if name == selector["name"] and _matches(labels, selector["matchers"]):
            out.append((labels, value - before.get((name, tuple(sorted(labels.items()))), 0.0)))
    return out


def histogram_quantile(q: float, buckets: dict[float, float]) -> float:
    """Prometheus' histogram_quantile over cumulative bucket counts {le: count}."""
    les = sorted(buckets)
    total = buckets[math.inf]
    if total == 0:
        return math.nan
    rank = q * total
    prev_le, prev_count = 0.0, 0.0
    for le in les:
        if buckets[le] >= rank:
            if le == math.inf:
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_count) / (buckets[le] - prev_count)
        prev_le, prev_count = le, buckets[le]
    return prev_le


def evaluate(query: str, before: dict, after: dict) -> float:
    """A canary query's value between two scrapes: only the shapes canary_queries writes are understood."""
    if m := re.fullmatch(rf"sum\(increase\({SELECTOR}\)\)", query):
        return sum(d for _, d in _delta(m, before, after))
    if m := re.fullmatch(rf"histogram_quantile\((?P<q>[0-9.]+), sum by \(le\) \(rate\({SELECTOR}\)\)\)", query):
        buckets: dict[float, float] = {}
        for labels, d in _delta(m, before, after):
            le = float(labels["le"])
            buckets[le] = buckets.get(le, 0.0) + d  # rate = increase / window: the quantile does not change
        return histogram_quantile(float(m["q"]), buckets) if buckets else math.nan
    raise AssertionError(f"a query shape this test does not evaluate (and Prometheus may not either): {query}")


async def _traffic(url: str, flood: int) -> list[int]:
    """Inference calls on every route the canary counts, then `flood` concurrent ones: their statuses."""
    key = {"Authorization": f"Bearer {PREDICT_KEY}"}
    async with httpx.AsyncClient(timeout=60) as client:
        codes = []
        for path, body in ((f"/v1/models/{MODEL}:predict", VALID), (f"/v2/models/{MODEL}/infer", v2_body([ISSUE])),
                           ("/v1/chat/completions", CHAT)) * 2:
            codes.append((await client.post(f"{url}{path}", json=body, headers=key)).status_code)
        codes.append((await client.post(f"{url}/v1/models/{MODEL}:predict", json={"instances": [{"title": "t"}]},
                                        headers=key)).status_code)  # a 400
        codes.append((await client.post(f"{url}/v1/models/{MODEL}:predict", json=VALID)).status_code)  # a 401
        await client.get(f"{url}/v1/models", headers=key)  # not an inference route: not counted
        flooded = await asyncio.gather(*[client.post(f"{url}/v1/models/{MODEL}:predict", json=VALID, headers=key)
                                         for _ in range(flood)])
        return codes + [r.status_code for r in flooded]


@pytest.fixture(scope="module", params=["kserve", "mlserver"])
def runtime(request, tmp_path_factory):
    """(base url, metrics url) of a slow server (0.2 s a model call, room for 4 prompts, batching off)."""
    tmp = tmp_path_factory.mktemp(f"canary-{request.param}")
    if request.param == "kserve":
        url, proc, _ = _start(tmp, "--delay-ms", "200", "--max-queue", "4", "--no-batching")
        metrics_url = f"{url}/metrics"
    else:
        keys = tmp / "keys.json"
        write_keys_file(keys, entries())
        url, proc = start_mlserver(
            tmp, MODEL, {"extra": {"model_factory": "llama_platform_tests.serving.keyword_model:SlowKeywordModel",
                                   "feature_lookup": "llama_platform_tests.serving.keyword_model:KeywordFeatures",
                                   "batching": False, "max_queue": 4}},
            env={"LLAMA_PLATFORM_API_KEY": "", "LLAMA_PLATFORM_SERVING_KEYS_FILE": str(keys)})
        metrics_url = f"http://127.0.0.1:{proc.metrics_port}/metrics"
    try:
        yield url, metrics_url
    finally:
        proc.stop()


def test_canary_queries_read_what_the_server_exports(runtime):
    url, metrics_url = runtime
    queries = canary_queries(REVISION, NAMESPACE)
    policy = CanaryPolicy(min_requests=8, max_error_rate=0.01, max_p95_latency_s=5.0)

    start = scrape(metrics_url)
    calm = asyncio.run(_traffic(url, flood=0))
    middle = scrape(metrics_url)
    assert sorted(set(calm)) == [200, 400, 401], calm
    requests, errors, p95 = (evaluate(queries[k], start, middle) for k in ("requests", "errors", "p95"))
    # Every inference call is counted, whatever its status; the model list and /metrics are not.
    assert (requests, errors) == (len(calm), 0)
    # Most calls ran the 0.2 s model: the p95 lies in the (0.1, 0.5] buckets, not in the quick refusals'.
    assert 0.1 < p95 <= 0.5, p95
    healthy = step(begin("s3://m/champion", "s3://m/candidate", policy), CanaryMetrics(int(requests), int(errors), p95),
                   policy)
    assert healthy.phase == "promoted", healthy.reason

    flood = asyncio.run(_traffic(url, flood=16))
    after = scrape(metrics_url)
    shed = flood.count(503)
    assert shed >= 8, flood  # 16 at once on room for 4: most are shed
    requests, errors, p95 = (evaluate(queries[k], middle, after) for k in ("requests", "errors", "p95"))
    assert (requests, errors) == (len(flood), shed)
    judged = step(begin("s3://m/champion", "s3://m/candidate", policy), CanaryMetrics(int(requests), int(errors), p95),
                  policy)
    assert judged.phase == "rolled_back" and judged.reason.startswith("error rate"), judged.reason

    # Another revision's pods are not the canary's.
    other = canary_queries("llama4-triage-predictor-00001", NAMESPACE)
    assert evaluate(other["requests"], start, after) == 0


def test_histogram_quantile_matches_prometheus_examples():
    # Cumulative buckets: 10 in (0, 0.1], 80 in (0.1, 0.5], 10 in (0.5, 1].
    buckets = {0.1: 10, 0.5: 90, 1.0: 100, math.inf: 100}
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1 + 0.4 * 40 / 80)
    assert histogram_quantile(0.95, buckets) == pytest.approx(0.5 + 0.5 * 5 / 10)
    assert histogram_quantile(0.99, {0.1: 10, math.inf: 100}) == 0.1  # in +Inf: the highest finite bound
