"""The endpoint's front door, on the real server process: hashed keys and tokens with scopes,
rotation without restart, rate limits, body limit, load shedding, metrics, and quiet logs."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from llama_platform.serving.auth import ApiKey, KeyFileError, KeyStore, TokenBucket, hash_key, parse_keys, write_keys_file
from llama_platform.services import free_port, start_service, wait_http_ok

MODEL = "triage-test"
PREDICT_KEY = "lpk_predict_3b9e51c0a7"
ADMIN_TOKEN = "lpk_admin_77c1d2"
METRICS_TOKEN = "lpk_prometheus_41e0aa"  # Prometheus' scrape token: the metrics scope only
SLOW_KEY = "lpk_slow_5a5a5a"
EXPIRED = "lpk_expired_0f0f0f"
SECRET_TITLE = "Zebra-quartz sentinel title 4821"
VALID = {"instances": [{"title": "Crash: a bug in the parser", "body": "Traceback ...", "repo": "acme/widgets"}]}
PAST = (datetime.now(timezone.utc) - timedelta(days=1)).isoformat()


def entries(extra: list[dict] | None = None) -> list[dict]:
    return [
        {"id": "ci-bot", "hash": hash_key(PREDICT_KEY), "scopes": ["predict"]},
        {"id": "ops-admin", "hash": hash_key(ADMIN_TOKEN), "scopes": ["admin"]},
        {"id": "prometheus", "hash": hash_key(METRICS_TOKEN), "scopes": ["metrics"], "kind": "service_token"},
        {"id": "slow", "hash": hash_key(SLOW_KEY), "scopes": ["predict"], "rate_per_s": 0.5, "burst": 2},
        {"id": "old-token", "hash": hash_key(EXPIRED), "scopes": ["predict"], "kind": "service_token",
         "expires_at": PAST},
    ] + (extra or [])


def _start(tmp: Path, *extra: str):
    keys = tmp / "keys.json"
    write_keys_file(keys, entries())
    port = free_port()
    cmd = [sys.executable, "-m", "llama_platform_tests.serving.keyword_server", "--name", MODEL,
           "--http-port", str(port), "--features", *extra]
    proc = start_service("kserve-sec", cmd, tmp / "server.log",
                         env={"LLAMA_PLATFORM_API_KEY": "", "LLAMA_PLATFORM_SERVING_KEYS_FILE": str(keys)})
    url = f"http://127.0.0.1:{port}"
    wait_http_ok(f"{url}/v2/health/ready", proc, timeout=60)
    return url, proc, keys


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sec")
    url, proc, keys = _start(tmp, "--max-body-bytes", "4096")
    try:
        yield url, keys, tmp / "server.log"
    finally:
        proc.stop()


def _auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_scopes_predict_key_cannot_read_metrics_admin_token_can(server):
    url, _, _ = server
    assert httpx.post(f"{url}/v1/models/{MODEL}:predict", json=VALID, headers=_auth(PREDICT_KEY)).status_code == 200
    r = httpx.get(f"{url}/metrics", headers=_auth(PREDICT_KEY))
    assert r.status_code == 403 and "'metrics' scope" in r.json()["error"]
    # admin implies predict and metrics
    assert httpx.post(f"{url}/v1/models/{MODEL}:predict", json=VALID, headers=_auth(ADMIN_TOKEN)).status_code == 200
    r = httpx.get(f"{url}/metrics", headers=_auth(ADMIN_TOKEN))
    assert r.status_code == 200
    for name in ("triage_http_requests_total", "triage_http_request_duration_seconds_bucket",
                 "triage_batch_size_bucket", "triage_queue_depth"):
        assert name in r.text, name
    assert 'triage_http_requests_total{route="v1_predict",status="200"}' in r.text
    assert 'route="metrics",status="403"' in r.text


def test_metrics_token_reads_metrics_and_nothing_else(server):
    """Prometheus' token (least privilege): /metrics, and a 403 on every route that serves data."""
    url, _, _ = server
    r = httpx.get(f"{url}/metrics", headers=_auth(METRICS_TOKEN))
    assert r.status_code == 200 and "triage_http_requests_total" in r.text
    for method, path, body in (("POST", f"/v1/models/{MODEL}:predict", VALID), ("GET", "/v1/models", None),
                               ("GET", f"/v2/models/{MODEL}", None), ("POST", f"/v1/models/{MODEL}:load", None),
                               ("POST", "/v2/repository/index", {})):
        r = httpx.request(method, f"{url}{path}", json=body, headers=_auth(METRICS_TOKEN))
        assert r.status_code == 403, (path, r.status_code, r.text)
        assert "lacks the" in r.json()["error"], path
    # Probes stay open to it as to everyone.
    assert httpx.get(f"{url}/v2/health/ready", headers=_auth(METRICS_TOKEN)).status_code == 200


def test_expired_token_is_401(server):
    url, _, _ = server
    r = httpx.post(f"{url}/v1/models/{MODEL}:predict", json=VALID, headers=_auth(EXPIRED))
    assert r.status_code == 401 and "expired" in r.json()["error"]


def test_rate_limit_is_429_with_retry_after(server):
    url, _, _ = server
    codes = [httpx.post(f"{url}/v1/models/{MODEL}:predict", json=VALID, headers=_auth(SLOW_KEY)) for _ in range(4)]
    assert [r.status_code for r in codes[:2]] == [200, 200]  # the burst
    limited = [r for r in codes[2:] if r.status_code == 429]
    assert limited, [r.status_code for r in codes]
    assert int(limited[0].headers["retry-after"]) >= 1
    assert "rate limit" in limited[0].json()["error"]
    # Another key is not affected by this one's bucket.
    assert httpx.post(f"{url}/v1/models/{MODEL}:predict", json=VALID, headers=_auth(PREDICT_KEY)).status_code == 200


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_over_the_limit_is_413(server, chunked):
    url, _, _ = server
    big = json.dumps({"instances": [{"title": "x" * 5000, "repo": "a/b"}]}).encode()
    content = iter([big[:2000], big[2000:]]) if chunked else big
    r = httpx.post(f"{url}/v1/models/{MODEL}:predict", content=content, headers=_auth(PREDICT_KEY))
    assert r.status_code == 413 and "4096 bytes" in r.json()["error"]


@pytest.mark.parametrize(
    "path, body, message",
    [
        ("/v1/triage", b"{oops", "not valid JSON"),
        ("/v1/triage", b'{"title": 3, "repo": "a/b"}', "title must be a non-empty string"),
        ("/v1/triage", b'{"title": "t"}', "repo must be a non-empty string"),
        ("/v1/chat/completions", b'{"model": "triage-test", "messages": "hi"}', "non-empty list"),
        ("/v1/chat/completions", b'{"model": "triage-test", "messages": [{"role": "user", "content": "Title: t"}]}',
         "name the repository"),
        (f"/v2/models/{MODEL}/infer", b'{"inputs": [{"name": "title", "shape": [1], "datatype": "BYTES", "data": ["t"]}]}',
         "missing inputs"),
    ],
    ids=["json", "type", "missing", "chat-messages", "chat-repo", "v2-missing"],
)
def test_bad_input_is_400_with_reason(server, path, body, message):
    url, _, _ = server
    r = httpx.post(f"{url}{path}", content=body, headers={**_auth(PREDICT_KEY), "content-type": "application/json"})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert message in (err["message"] if isinstance(err, dict) else err)


def test_keys_rotate_without_restart(server):
    url, keys, _ = server
    new_key = "lpk_rotated_in_91ab"
    rotated = [e for e in entries() if e["id"] != "ci-bot"] + [{"id": "ci-bot-2", "hash": hash_key(new_key), "scopes": ["predict"]}]
    write_keys_file(keys, rotated)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = httpx.post(f"{url}/v1/models/{MODEL}:predict", json=VALID, headers=_auth(new_key))
            if r.status_code == 200:
                break
            time.sleep(0.3)
        assert r.status_code == 200
        assert httpx.post(f"{url}/v1/models/{MODEL}:predict", json=VALID, headers=_auth(PREDICT_KEY)).status_code == 401
        # A broken rotation keeps the last good keys instead of locking everyone out.
        keys.write_text("{not json")
        time.sleep(1.2)
        assert httpx.post(f"{url}/v1/models/{MODEL}:predict", json=VALID, headers=_auth(new_key)).status_code == 200
    finally:
        write_keys_file(keys, entries())
        time.sleep(1.2)


def test_no_prompt_key_or_token_in_the_log(server):
    url, _, log = server
    body = {"instances": [{"title": SECRET_TITLE, "body": SECRET_TITLE, "repo": "acme/secret-repo"}]}
    assert httpx.post(f"{url}/v1/models/{MODEL}:predict", json=body, headers=_auth(PREDICT_KEY)).status_code == 200
    httpx.post(f"{url}/v1/triage", json={"title": SECRET_TITLE, "repo": 5}, headers=_auth(PREDICT_KEY))
    httpx.post(f"{url}/v1/models/{MODEL}:predict", json=body, headers=_auth("lpk_wrong_" + SECRET_TITLE))
    text = log.read_text(errors="replace")
    assert "POST /v1/models" in text and "serving keys loaded" in text  # the log is being written
    for secret in (SECRET_TITLE, PREDICT_KEY, ADMIN_TOKEN, METRICS_TOKEN, hash_key(PREDICT_KEY)[7:]):
        assert secret not in text


def test_flood_is_shed_with_503_and_nothing_is_lost(tmp_path):
    # A slow model (0.2 s a call), batching off, room for 4 prompts: 24 concurrent requests.
    url, proc, _ = _start(tmp_path, "--delay-ms", "200", "--max-queue", "4", "--no-batching")
    try:
        async def flood():
            async with httpx.AsyncClient(timeout=30, headers=_auth(PREDICT_KEY)) as client:
                return await asyncio.gather(*[client.post(f"{url}/v1/models/{MODEL}:predict", json=VALID)
                                              for _ in range(24)])
        responses = asyncio.run(flood())
    finally:
        proc.stop()
    codes = [r.status_code for r in responses]
    assert set(codes) == {200, 503}, codes  # every request answered: served or told to come back
    assert 1 <= codes.count(200) <= 8
    shed = next(r for r in responses if r.status_code == 503)
    assert shed.headers["retry-after"] == "1" and "server busy" in shed.json()["error"]


def test_bootstrapped_cluster_keys_are_least_privilege(tmp_path):
    """The keys a cluster starts with (`python -m llama_platform.serving.auth bootstrap DIR`, what
    deploy/README.md puts into Vault): on a real server, the client key predicts and cannot read
    /metrics, Prometheus' token reads /metrics and nothing else, the admin key does both."""
    out = tmp_path / "keys"
    made = subprocess.run([sys.executable, "-m", "llama_platform.serving.auth", "bootstrap", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    plain = {kid: (out / f"{kid}.key").read_text() for kid in ("client", "prometheus", "admin")}
    assert all((out / f"{kid}.key").stat().st_mode & 0o077 == 0 for kid in plain)  # owner-only
    doc = (out / "keys.json").read_text()
    assert not any(key in doc or key in made.stdout + made.stderr for key in plain.values())  # hashes only
    assert {k.id: set(k.scopes) for k in parse_keys(json.loads(doc), "keys.json")} == {
        "client": {"predict"}, "prometheus": {"metrics"}, "admin": {"admin"}}
    port = free_port()
    proc = start_service("kserve-boot", [sys.executable, "-m", "llama_platform_tests.serving.keyword_server",
                                         "--name", MODEL, "--http-port", str(port), "--features"],
                         tmp_path / "server.log",
                         env={"LLAMA_PLATFORM_API_KEY": "", "LLAMA_PLATFORM_SERVING_KEYS_FILE": str(out / "keys.json")})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{url}/v2/health/ready", proc, timeout=60)
        status = {kid: (httpx.post(f"{url}/v1/models/{MODEL}:predict", json=VALID, headers=_auth(key)).status_code,
                        httpx.get(f"{url}/metrics", headers=_auth(key)).status_code)
                  for kid, key in plain.items()}
    finally:
        proc.stop()
    assert status == {"client": (200, 403), "prometheus": (403, 200), "admin": (200, 200)}
    # A second bootstrap into the same folder refuses to overwrite keys someone may hold.
    again = subprocess.run([sys.executable, "-m", "llama_platform.serving.auth", "bootstrap", str(out)],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "refusing to overwrite existing keys" in again.stderr
    assert (out / "client.key").read_text() == plain["client"]


# ---------------------------------------------------------------- in-process units


def test_keys_file_validation_names_the_entry():
    with pytest.raises(KeyFileError, match=r"keys\[0\] \(a\)\.scopes"):
        parse_keys({"keys": [{"id": "a", "hash": hash_key("k"), "scopes": ["root"]}]}, "f")
    with pytest.raises(KeyFileError, match=r"hash must be"):
        parse_keys([{"id": "a", "hash": "plaintext-key", "scopes": ["predict"]}], "f")
    with pytest.raises(KeyFileError, match="no API keys"):
        KeyStore()


def test_token_bucket_refills_at_its_rate():
    bucket = TokenBucket(rate_per_s=2.0, burst=2.0)
    key = ApiKey("k", "0" * 64, frozenset({"predict"}))
    assert bucket.take(key, now=0.0) == 0 and bucket.take(key, now=0.0) == 0
    assert bucket.take(key, now=0.0) == pytest.approx(0.5)
    assert bucket.take(key, now=0.5) == 0  # one token back after 1/rate seconds
