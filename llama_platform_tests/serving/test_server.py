"""The real model server process (KServe + auth + predictor) around a keyword model."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from llama_platform.serving.client import smoke_request
from llama_platform.services import free_port, start_service, wait_http_ok

API_KEY = "test-key-7f3a9c2e5b1d"
WRONG_KEY = "wrong-key-0000aaaa"
MODEL = "triage-test"
VALID = {"instances": [{"title": "Crash: a bug in the parser", "body": "Traceback ...", "repo": "acme/widgets"}]}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("kserve") / "server.log"
    port = free_port()
    cmd = [sys.executable, "-m", "llama_platform_tests.serving.keyword_server", "--name", MODEL, "--http-port", str(port)]
    proc = start_service("kserve-test", cmd, log, env={"LLAMA_PLATFORM_API_KEY": API_KEY})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{url}/v2/health/ready", proc, timeout=60)
        yield url, proc, log
    finally:
        proc.stop()


def _predict(url: str, body, headers: dict | None = None, raw: bool = False) -> httpx.Response:
    kwargs = {"content": body} if raw else {"json": body}
    return httpx.post(f"{url}/v1/models/{MODEL}:predict", headers=headers or {}, timeout=30, **kwargs)


@pytest.mark.parametrize("headers", [{"Authorization": f"Bearer {API_KEY}"}, {"X-API-Key": API_KEY}])
def test_valid_key_gets_labels(server, headers):
    url, _, _ = server
    r = _predict(url, VALID, headers)
    assert r.status_code == 200, r.text
    (pred,) = r.json()["predictions"]
    assert pred["labels"] == ["bug"]
    assert set(pred["scores"]) == {"bug", "feature", "question", "docs"}
    assert sum(pred["scores"].values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": f"Bearer {WRONG_KEY}"}, {"X-API-Key": WRONG_KEY}, {"Authorization": f"Basic {API_KEY}"},
     {"Authorization": f"Bearer {API_KEY}x"}],
    ids=["none", "wrong-bearer", "wrong-x-api-key", "not-bearer", "key-prefix"],
)
def test_missing_or_wrong_key_is_401(server, headers):
    url, _, _ = server
    r = _predict(url, VALID, headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert "predictions" not in r.text


@pytest.mark.parametrize(
    "body, raw, message",
    [
        ({"inputs": []}, False, "instances"),
        ({"instances": []}, False, "non-empty list"),
        ({"instances": [{"title": "", "body": "b", "repo": "a/b"}]}, False, "title must be a non-empty string"),
        ({"instances": [{"title": "t", "body": 3, "repo": "a/b"}]}, False, "body must be a string"),
        ({"instances": [{"title": "t", "body": "b"}]}, False, "repo"),
        ({"instances": ["just a string"]}, False, "must be an object"),
        ({"instances": [{"title": "t", "repo": "a/b", "features": [1]}]}, False, "features"),
        ({"instances": [{"title": "t", "repo": "a/b"}] * 65}, False, "at most 64"),
        (b"{not json", True, "not valid JSON|Unrecognized request format"),
    ],
    ids=["no-instances", "empty", "empty-title", "body-type", "no-repo", "not-object", "bad-features", "too-many", "not-json"],
)
def test_bad_payload_is_400_with_reason(server, body, raw, message):
    url, _, _ = server
    r = _predict(url, body, {"X-API-Key": API_KEY}, raw=raw)
    assert r.status_code == 400, r.text
    assert re.search(message, r.json()["error"])


def test_v2_infer(server):
    url, _, _ = server
    body = {
        "id": "req-1",
        "inputs": [
            {"name": "title", "shape": [2], "datatype": "BYTES", "data": ["Docs typo", "Add a feature flag"]},
            {"name": "repo", "shape": [2], "datatype": "BYTES", "data": ["a/b", "a/b"]},
        ],
    }
    r = httpx.post(f"{url}/v2/models/{MODEL}/infer", json=body, headers={"X-API-Key": API_KEY}, timeout=30)
    assert r.status_code == 200, r.text
    out = {o["name"]: o for o in r.json()["outputs"]}
    assert r.json()["id"] == "req-1"
    assert out["labels"]["data"] == ['["docs"]', '["feature"]']
    assert out["scores"]["shape"] == [2, 4]
    assert out["label_order"]["data"] == ["bug", "feature", "question", "docs"]
    bad = {"inputs": [{"name": "title", "shape": [1], "datatype": "INT32", "data": [1]}]}
    r = httpx.post(f"{url}/v2/models/{MODEL}/infer", json=bad, headers={"X-API-Key": API_KEY}, timeout=30)
    assert r.status_code == 400 and "BYTES" in r.json()["error"]
    r = httpx.post(f"{url}/v2/models/{MODEL}/infer", json=body, timeout=30)
    assert r.status_code == 401


def test_metrics_need_the_key_health_does_not(server):
    url, _, _ = server
    assert httpx.get(f"{url}/metrics", timeout=10).status_code == 401
    r = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
    assert r.status_code == 200 and "request_predict_seconds" in r.text
    for path in ("/", "/v2/health/live", "/v2/health/ready", f"/v2/models/{MODEL}/ready"):
        assert httpx.get(f"{url}{path}", timeout=10).status_code == 200, path
    # Metadata and model listings are not health probes.
    assert httpx.get(f"{url}/v2/models/{MODEL}", timeout=10).status_code == 401
    assert httpx.get(f"{url}/v1/models", timeout=10).status_code == 401


def test_smoke_request_client(server):
    url, _, _ = server
    status, body = smoke_request(url, API_KEY, MODEL, VALID["instances"])
    assert status == 200 and body["predictions"][0]["labels"] == ["bug"]
    status, body = smoke_request(url, WRONG_KEY, MODEL, VALID["instances"])
    assert status == 401 and "API key" in body["error"]


def test_listens_on_loopback_only(server):
    _, proc, _ = server
    listening = {c.laddr for c in psutil.Process(proc.pid).connections(kind="inet") if c.status == psutil.CONN_LISTEN}
    assert listening and {addr.ip for addr in listening} == {"127.0.0.1"}  # no gRPC port, no 0.0.0.0


def test_key_never_appears_in_the_log(server):
    url, _, log = server
    # Requests that succeed, fail auth and fail validation all leave log lines.
    _predict(url, VALID, {"Authorization": f"Bearer {API_KEY}"})
    _predict(url, VALID, {"X-API-Key": WRONG_KEY})
    _predict(url, {"instances": 1}, {"X-API-Key": API_KEY})
    text = Path(log).read_text(errors="replace")
    assert "POST /v1/models" in text  # the log is really being written
    assert API_KEY not in text and WRONG_KEY not in text


def test_server_refuses_to_start_without_a_key(tmp_path):
    cmd = [sys.executable, "-m", "llama_platform.serving.server", "--model-dir", str(tmp_path), "--http-port", str(free_port())]
    proc = start_service("kserve-nokey", cmd, tmp_path / "nokey.log", env={"LLAMA_PLATFORM_API_KEY": ""})
    try:
        assert proc.popen.wait(timeout=60) == 2
    finally:
        proc.stop()
    assert "LLAMA_PLATFORM_API_KEY" in proc.log_tail()
