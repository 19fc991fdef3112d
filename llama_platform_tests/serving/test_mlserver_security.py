"""The MLServer runtime's front door, on real processes: the same keys file, scopes, rate limits, body
limit, statuses and messages as the KServe server, on every route MLServer serves (REST and gRPC).

One MLServer (started as the image starts it: `python -m llama_platform.serving.mlserver_app`) and
one KServe server share a keys file; the bad-input table runs against both and compares."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from pathlib import Path

import grpc
import httpx
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

from llama_platform.serving.auth import hash_key, write_keys_file
from llama_platform_tests.serving.test_mlserver import start_mlserver, v2_body
from llama_platform_tests.serving.test_security import (
    ADMIN_TOKEN,
    EXPIRED,
    METRICS_TOKEN,
    MODEL,
    PREDICT_KEY,
    SECRET_TITLE,
    SLOW_KEY,
    VALID,
    _start,
    entries,
)

LIMIT = 4096
FEATURES = "llama_platform_tests.serving.keyword_model:KeywordFeatures"
ISSUE = {"title": "Crash: a bug in the parser", "body": "Traceback ...", "repo": "acme/widgets"}
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Title: Docs typo"}], "metadata": {"repo": "a/b"}}
# Every route the runtime serves, with a valid body: (method, path, json body).
RUNTIME_ROUTES = [
    ("POST", f"/v1/models/{MODEL}:predict", VALID),
    ("POST", f"/v2/models/{MODEL}/infer", v2_body([ISSUE])),
    ("POST", "/v1/chat/completions", CHAT),
    ("GET", "/v1/models", None),
]
ROUTE_IDS = ["v1", "v2", "chat", "models"]


def _auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def _error(r: httpx.Response) -> str:
    err = r.json()["error"]
    return err["message"] if isinstance(err, dict) else err


def _mlserver(tmp: Path, keys: Path, extra: dict | None = None, args: tuple[str, ...] = ()):
    return start_mlserver(
        tmp, MODEL,
        {"extra": {"model_factory": "llama_platform_tests.serving.keyword_model:KeywordModel",
                   "feature_lookup": FEATURES, "max_body_bytes": LIMIT, **(extra or {})}},
        # gRPC's body limit, as the Seldon Server sets it (k8s/serving.py).
        env={"LLAMA_PLATFORM_API_KEY": "", "LLAMA_PLATFORM_SERVING_KEYS_FILE": str(keys),
             "MLSERVER_GRPC_MAX_MESSAGE_LENGTH": str(LIMIT)},
        args=("--max-body-bytes", str(LIMIT), *args))


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """(MLServer url, its process, KServe url, keys file): both serving the keyword model, same keys."""
    tmp = tmp_path_factory.mktemp("mlserver-sec")
    procs = []
    try:
        ks_url, ks, keys = _start(tmp, "--max-body-bytes", str(LIMIT))
        procs.append(ks)
        ml_url, ml = _mlserver(tmp, keys)
        procs.append(ml)
        yield ml_url, ml, ks_url, keys
    finally:
        for p in procs:
            p.stop()


@pytest.mark.parametrize("method, path, body", RUNTIME_ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("key, message", [(None, "missing or invalid API key"),
                                          ("lpk_not_a_key", "missing or invalid API key"),
                                          (EXPIRED, "API key or token expired")], ids=["none", "wrong", "expired"])
def test_every_runtime_route_is_401_without_a_valid_key(servers, method, path, body, key, message):
    ml_url, _, ks_url, _ = servers
    for url in (ml_url, ks_url):
        r = httpx.request(method, f"{url}{path}", json=body, headers=_auth(key) if key else None, timeout=30)
        assert r.status_code == 401, (url, r.text)
        assert _error(r).startswith(message) and r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("method, path, body", RUNTIME_ROUTES, ids=ROUTE_IDS)
def test_metrics_token_is_403_on_every_runtime_route(servers, method, path, body):
    """Prometheus' scrape token reads /metrics and nothing else, on both runtimes, REST and (below) gRPC."""
    ml_url, _, ks_url, _ = servers
    for url in (ml_url, ks_url):
        r = httpx.request(method, f"{url}{path}", json=body, headers=_auth(METRICS_TOKEN), timeout=30)
        assert r.status_code == 403, (url, r.text)
        assert "lacks the 'predict' scope" in _error(r), url


@pytest.mark.parametrize("method, path, body", RUNTIME_ROUTES, ids=ROUTE_IDS)
def test_every_runtime_route_answers_a_valid_key(servers, method, path, body):
    ml_url, _, _, _ = servers
    r = httpx.request(method, f"{ml_url}{path}", json=body, headers={"X-API-Key": PREDICT_KEY}, timeout=30)
    assert r.status_code == 200, r.text


def test_probes_stay_open_and_mlserver_own_routes_need_scopes(servers):
    ml_url, ml, _, _ = servers
    for path in ("/v2/health/live", "/v2/health/ready", f"/v2/models/{MODEL}/ready"):
        assert httpx.get(f"{ml_url}{path}").status_code == 200, path
    # Routes that run no runtime code: metadata needs predict, the repository API admin (as on KServe).
    r = httpx.get(f"{ml_url}/v2/models/{MODEL}")
    assert r.status_code == 401 and "missing or invalid API key" in _error(r)
    assert httpx.get(f"{ml_url}/v2/models/{MODEL}", headers=_auth(PREDICT_KEY)).json()["name"] == MODEL
    r = httpx.post(f"{ml_url}/v2/repository/index", json={}, headers=_auth(PREDICT_KEY))
    assert r.status_code == 403 and "'admin' scope" in _error(r)
    r = httpx.post(f"{ml_url}/v2/repository/index", json={}, headers=_auth(ADMIN_TOKEN))
    assert r.status_code == 200 and MODEL in [m["name"] for m in r.json()]
    r = httpx.post(f"{ml_url}/v2/repository/models/{MODEL}/unload", headers=_auth(PREDICT_KEY))
    assert r.status_code == 403
    assert httpx.get(f"{ml_url}/v2/models/{MODEL}/ready").status_code == 200  # still loaded


def test_metrics_need_the_metrics_scope_and_count_refusals(servers):
    ml_url, ml, _, _ = servers
    httpx.post(f"{ml_url}/v2/models/{MODEL}/infer", json=v2_body([ISSUE]), headers=_auth(PREDICT_KEY))
    # MLServer's generate route is V2 infer under another name: counted as v2_generate (the canary counts it).
    r = httpx.post(f"{ml_url}/v2/models/{MODEL}/generate", json=v2_body([ISSUE]), headers=_auth(PREDICT_KEY))
    assert r.status_code == 200, r.text
    httpx.post(f"{ml_url}/v2/models/{MODEL}/infer", json=v2_body([ISSUE]))
    metrics_url = f"http://127.0.0.1:{ml.metrics_port}/metrics"
    r = httpx.get(metrics_url)
    assert r.status_code == 401
    r = httpx.get(metrics_url, headers=_auth(PREDICT_KEY))
    assert r.status_code == 403 and "'metrics' scope" in _error(r)
    assert httpx.get(metrics_url, headers=_auth(ADMIN_TOKEN)).status_code == 200  # admin implies metrics
    r = httpx.get(metrics_url, headers=_auth(METRICS_TOKEN))  # Prometheus' token, as the PodMonitor sends it
    assert r.status_code == 200
    assert 'triage_http_requests_total{route="v2_infer",status="200"}' in r.text
    assert 'triage_http_requests_total{route="v2_infer",status="401"}' in r.text
    assert 'triage_http_requests_total{route="v2_generate",status="200"}' in r.text
    assert 'triage_rejected_total{reason="unauthenticated"}' in r.text


def test_rate_limit_is_429_with_retry_after_on_v2_and_custom_routes(servers):
    ml_url, _, _, _ = servers
    v2 = [httpx.post(f"{ml_url}/v2/models/{MODEL}/infer", json=v2_body([ISSUE]), headers=_auth(SLOW_KEY))
          for _ in range(4)]
    assert [r.status_code for r in v2[:2]] == [200, 200], [r.text for r in v2]  # the burst
    limited = [r for r in v2[2:] if r.status_code == 429]
    assert limited, [r.status_code for r in v2]
    assert int(limited[0].headers["retry-after"]) >= 1 and _error(limited[0]).startswith("rate limit of key 'slow'")
    # The same key's bucket covers the custom handlers; other keys are not affected.
    r = httpx.post(f"{ml_url}/v1/chat/completions", json=CHAT, headers=_auth(SLOW_KEY))
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and "rate limit" in _error(r)
    assert httpx.post(f"{ml_url}/v1/chat/completions", json=CHAT, headers=_auth(PREDICT_KEY)).status_code == 200


@pytest.mark.parametrize("path", [f"/v1/models/{MODEL}:predict", f"/v2/models/{MODEL}/infer", "/v1/chat/completions"],
                         ids=["v1", "v2", "chat"])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_over_the_limit_is_413(servers, path, chunked):
    ml_url, _, _, _ = servers
    big = json.dumps({"instances": [{"title": "x" * 5000, "repo": "a/b"}]}).encode()
    content = iter([big[:2000], big[2000:]]) if chunked else big
    r = httpx.post(f"{ml_url}{path}", content=content, headers=_auth(PREDICT_KEY))
    assert r.status_code == 413 and _error(r) == f"request body larger than {LIMIT} bytes"


def test_compressed_bodies_are_refused(servers):
    # MLServer would inflate a gzip body whole, past the body limit (which saw only the compressed bytes).
    ml_url, _, _, _ = servers
    bomb = gzip.compress(json.dumps({"instances": [{"title": "x" * 3_000_000, "repo": "a/b"}]}).encode())
    assert len(bomb) < LIMIT
    for path in (f"/v2/models/{MODEL}/infer", f"/v1/models/{MODEL}:predict"):
        r = httpx.post(f"{ml_url}{path}", content=bomb,
                       headers={**_auth(PREDICT_KEY), "content-encoding": "gzip", "content-type": "application/json"})
        assert r.status_code == 415 and "compressed request bodies (gzip) are not accepted" in _error(r)


# The bad-input table of test_security.py; /v1/triage (the page's route, KServe only) becomes V1 predict.
# KServe parses V1 JSON itself (its own message); everything else is our parsing on both runtimes.
BAD_INPUT = [
    (f"/v1/models/{MODEL}:predict", b"{oops", "not valid JSON"),
    (f"/v1/models/{MODEL}:predict", b'{"instances": [{"title": 3, "repo": "a/b"}]}', "title must be a non-empty string"),
    (f"/v1/models/{MODEL}:predict", b'{"instances": [{"title": "t"}]}', "repo must be a non-empty string"),
    ("/v1/chat/completions", b'{"model": "triage-test", "messages": "hi"}', "non-empty list"),
    ("/v1/chat/completions", b'{"model": "triage-test", "messages": [{"role": "user", "content": "Title: t"}]}',
     "name the repository"),
    (f"/v2/models/{MODEL}/infer", b'{"inputs": [{"name": "title", "shape": [1], "datatype": "BYTES", "data": ["t"]}]}',
     "missing inputs"),
]


@pytest.mark.parametrize("path, body, message", BAD_INPUT,
                         ids=["json", "type", "missing", "chat-messages", "chat-repo", "v2-missing"])
def test_bad_input_is_400_with_the_same_reason_as_kserve(servers, path, body, message):
    ml_url, _, ks_url, _ = servers
    errors = []
    for url in (ml_url, ks_url):
        r = httpx.post(f"{url}{path}", content=body, headers={**_auth(PREDICT_KEY), "content-type": "application/json"})
        assert r.status_code == 400, (url, r.text)
        errors.append(_error(r))
    assert message in errors[0]
    if body == b"{oops":
        assert "Unrecognized request format" in errors[1]  # KServe's V1 parser
    else:
        assert errors[0] == errors[1]


def test_grpc_infer_checks_the_same_keys_and_size(servers):
    _, ml, _, _ = servers
    request = pb.ModelInferRequest(model_name=MODEL, inputs=[
        pb.ModelInferRequest.InferInputTensor(name=k, datatype="BYTES", shape=[1],
                                              contents=pb.InferTensorContents(bytes_contents=[ISSUE[k].encode()]))
        for k in ("title", "body", "repo")])
    with grpc.insecure_channel(f"127.0.0.1:{ml.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.ModelInfer(request, timeout=30)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "missing or invalid API key" in refused.value.details()
        with pytest.raises(grpc.RpcError) as forbidden:  # Prometheus' token: no predict over gRPC either
            stub.ModelInfer(request, metadata=[("authorization", f"Bearer {METRICS_TOKEN}")], timeout=30)
        assert forbidden.value.code() == grpc.StatusCode.PERMISSION_DENIED
        answer = stub.ModelInfer(request, metadata=[("authorization", f"Bearer {PREDICT_KEY}")], timeout=30)
        big = pb.ModelInferRequest(model_name=MODEL, inputs=[pb.ModelInferRequest.InferInputTensor(
            name="title", datatype="BYTES", shape=[1], contents=pb.InferTensorContents(bytes_contents=[b"x" * 5000]))])
        with pytest.raises(grpc.RpcError) as too_big:
            stub.ModelInfer(big, metadata=[("authorization", f"Bearer {PREDICT_KEY}")], timeout=30)
        assert too_big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    outputs = {o.name: o for o in answer.outputs}
    assert json.loads(outputs["labels"].contents.bytes_contents[0]) == ["bug"]
    assert outputs["scores"].datatype == "FP32" and len(outputs["scores"].contents.fp32_contents) == 4


def test_keys_rotate_without_restart(servers):
    ml_url, _, _, keys = servers
    new_key = "lpk_rotated_mlserver_55e1"
    rotated = [e for e in entries() if e["id"] != "ci-bot"] + [{"id": "ci-bot-2", "hash": hash_key(new_key),
                                                                  "scopes": ["predict"]}]
    write_keys_file(keys, rotated)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = httpx.post(f"{ml_url}/v2/models/{MODEL}/infer", json=v2_body([ISSUE]), headers=_auth(new_key))
            if r.status_code == 200:
                break
            time.sleep(0.3)
        assert r.status_code == 200
        assert httpx.post(f"{ml_url}/v1/models/{MODEL}:predict", json=VALID, headers=_auth(new_key)).status_code == 200
        r = httpx.post(f"{ml_url}/v2/models/{MODEL}/infer", json=v2_body([ISSUE]), headers=_auth(PREDICT_KEY))
        assert r.status_code == 401
        # A broken rotation keeps the last good keys instead of locking everyone out.
        keys.write_text("{not json")
        time.sleep(1.2)
        assert httpx.post(f"{ml_url}/v1/models/{MODEL}:predict", json=VALID, headers=_auth(new_key)).status_code == 200
    finally:
        write_keys_file(keys, entries())
        time.sleep(1.2)


def test_no_prompt_key_or_token_in_the_log(servers):
    ml_url, ml, _, _ = servers
    issue = {"title": SECRET_TITLE, "body": SECRET_TITLE, "repo": "acme/secret-repo"}
    assert httpx.post(f"{ml_url}/v2/models/{MODEL}/infer", json=v2_body([issue]), headers=_auth(PREDICT_KEY)).status_code == 200
    assert httpx.post(f"{ml_url}/v1/models/{MODEL}:predict", json={"instances": [issue]},
                      headers=_auth(PREDICT_KEY)).status_code == 200
    httpx.post(f"{ml_url}/v1/models/{MODEL}:predict", json={"instances": [{**issue, "repo": 5}]}, headers=_auth(PREDICT_KEY))
    httpx.post(f"{ml_url}/v2/models/{MODEL}/infer", json=v2_body([issue]), headers=_auth("lpk_wrong_" + SECRET_TITLE))
    text = ml.log_path.read_text(errors="replace")
    assert "Loaded model" in text and f"serving keys loaded: {len(entries())}" in text  # the log is being written
    for secret in (SECRET_TITLE, PREDICT_KEY, ADMIN_TOKEN, METRICS_TOKEN, hash_key(PREDICT_KEY)[7:]):
        assert secret not in text


def test_mlserver_refuses_to_start_without_keys(tmp_path):
    empty = tmp_path / "none.json"
    with pytest.raises(Exception, match="no API keys configured"):
        _mlserver(tmp_path, empty)


def test_flood_is_shed_with_503_and_retry_after(tmp_path):
    keys = tmp_path / "keys.json"
    write_keys_file(keys, entries())
    # A slow model (0.2 s a call), batching off, room for 4 prompts: 24 concurrent requests.
    url, proc = _mlserver(tmp_path, keys, {"model_factory": "llama_platform_tests.serving.keyword_model:SlowKeywordModel",
                                           "batching": False, "max_queue": 4})
    try:
        async def flood():
            async with httpx.AsyncClient(timeout=30, headers=_auth(PREDICT_KEY)) as client:
                return await asyncio.gather(*[client.post(f"{url}/v2/models/{MODEL}/infer", json=v2_body([ISSUE]))
                                              for _ in range(24)])
        responses = asyncio.run(flood())
    finally:
        proc.stop()
    codes = [r.status_code for r in responses]
    assert set(codes) == {200, 503}, codes  # every request answered: served or told to come back
    shed = next(r for r in responses if r.status_code == 503)
    assert shed.headers["retry-after"] == "1" and "server busy" in _error(shed)
