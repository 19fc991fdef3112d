"""Prometheus metrics of the triage endpoint, on the default registry (KServe's and MLServer's
/metrics both export it). Route labels come from a fixed set, never from the raw path, so a
client cannot blow up the series count.
"""

from __future__ import annotations

import re

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("triage_http_requests", "HTTP requests by route and status code", ["route", "status"])
LATENCY = Histogram(
    "triage_http_request_duration_seconds", "Request latency by route", ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BATCH_SIZE = Histogram("triage_batch_size", "Prompts per model call", buckets=(1, 2, 4, 8, 16, 32, 64, 128))
QUEUE_DEPTH = Gauge("triage_queue_depth", "Prompts queued or running in the model")
REJECTED = Counter("triage_rejected", "Requests refused before the model, by reason", ["reason"])

_ROUTES = [
    ("v1_predict", re.compile(r"^/v1/models/[^/]+:predict$")),
    ("v2_infer", re.compile(r"^/v2/models/[^/]+(/versions/[^/]+)?/infer(_stream)?$")),
    # MLServer's generate routes (the runtime serves and checks them: mlserver_app.RUNTIME_PATHS).
    ("v2_generate", re.compile(r"^/v2/models/[^/]+(/versions/[^/]+)?/generate(_stream)?$")),
    ("openai_chat", re.compile(r"^/v1/chat/completions$")),
    ("models", re.compile(r"^/v1/models$|^/v2/models/[^/]+$")),
    ("triage", re.compile(r"^/v1/triage$")),
    ("health", re.compile(r"^/$|^/v2/health/|^/v2/models/[^/]+(/versions/[^/]+)?/ready$")),
    ("metrics", re.compile(r"^/metrics$")),
    ("ui", re.compile(r"^/ui/?$")),
]


def route_of(path: str) -> str:
    for name, pattern in _ROUTES:
        if pattern.match(path):
            return name
    return "other"
