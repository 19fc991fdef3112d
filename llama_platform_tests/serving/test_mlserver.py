"""One predictor, two runtimes: MLServer (Seldon Core 2's server, from its own venv) and KServe,
both started for real on 127.0.0.1, give the same answers to the same V1 and V2 payloads."""

from __future__ import annotations

import ipaddress
import json
import shutil
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from llama_platform.k8s.serving import mlserver_model_settings
from llama_platform.services import free_port, start_service, wait_http_ok
from llama_platform.training.prompts import LABELS

REPO = Path(__file__).resolve().parents[2]
MLSERVER_VENV = REPO / ".venv-mlserver"
API_KEY = "lpk_two_runtimes_8d1f"
MODEL = "triage-test"
ISSUES = [
    {"title": "Crash: a bug in the parser", "body": "Traceback ...", "repo": "acme/widgets"},
    {"title": "Docs: typo on the install page", "repo": "octo/tools"},
    {"title": "Add a feature flag for the cache", "body": "It would be nice.", "repo": "acme/widgets"},
]


def start_mlserver(tmp: Path, name: str, parameters: dict | None, env: dict | None = None, args: tuple[str, ...] = (),
                   model_dir: Path | None = None):
    """MLServer serving `name`; with `model_dir`, laid out as Seldon's agent does: the model's files
    and its model-settings.json in one folder (parameters None: the default settings, uri ".")."""
    python = MLSERVER_VENV / "bin" / "python"
    assert (MLSERVER_VENV / "bin" / "mlserver").exists(), \
        f"{MLSERVER_VENV} has no mlserver: run `make mlserver-env` (MLServer needs its own venv)"
    models = tmp / "mlserver"
    if model_dir is not None:
        shutil.copytree(model_dir, models / name)
    else:
        (models / name).mkdir(parents=True)
    http, grpc, metrics = free_port(), free_port(), free_port()
    (models / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": http, "grpc_port": grpc, "metrics_port": metrics,
        "parallel_workers": 0, "debug": False,
    }))
    # The same model-settings the Seldon deployment ships next to the model (k8s/serving.py).
    (models / name / "model-settings.json").write_text(json.dumps(mlserver_model_settings(name, parameters)))
    # The image's command (deploy/docker/mlserver.Dockerfile): `mlserver start` with our refusals' headers.
    proc = start_service("mlserver", [str(python), "-m", "llama_platform.serving.mlserver_app", *args, "start", str(models)],
                         tmp / "mlserver.log", env={"PYTHONPATH": str(REPO), **(env or {"LLAMA_PLATFORM_API_KEY": API_KEY})},
                         cwd=REPO)
    url = f"http://127.0.0.1:{http}"
    wait_http_ok(f"{url}/v2/models/{name}/ready", proc, timeout=180)
    proc.grpc_port, proc.metrics_port = grpc, metrics
    return url, proc


def start_kserve(tmp: Path, cmd: list[str]):
    port = free_port()
    proc = start_service("kserve", [sys.executable, "-m", *cmd, "--http-port", str(port)], tmp / "kserve.log",
                         env={"LLAMA_PLATFORM_API_KEY": API_KEY})
    url = f"http://127.0.0.1:{port}"
    wait_http_ok(f"{url}/v2/health/ready", proc, timeout=300)
    return url, proc


def v2_body(issues: list[dict]) -> dict:
    return {"id": "req-7", "inputs": [
        {"name": k, "shape": [len(issues)], "datatype": "BYTES", "data": [i.get(k, "") for i in issues]}
        for k in ("title", "body", "repo")]}


def answers(url: str, name: str, headers: dict | None = None) -> tuple[list[dict], dict]:
    v1 = httpx.post(f"{url}/v1/models/{name}:predict", json={"instances": ISSUES}, headers=headers, timeout=120)
    assert v1.status_code == 200, v1.text
    v2 = httpx.post(f"{url}/v2/models/{name}/infer", json=v2_body(ISSUES), headers=headers, timeout=120)
    assert v2.status_code == 200, v2.text
    return v1.json()["predictions"], {o["name"]: o for o in v2.json()["outputs"]}


@pytest.fixture(scope="module")
def runtimes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("two-runtimes")
    procs = []
    try:
        ml_url, ml = start_mlserver(tmp, MODEL, {"extra": {
            "model_factory": "llama_platform_tests.serving.keyword_model:KeywordModel",
            "feature_lookup": "llama_platform_tests.serving.keyword_model:KeywordFeatures"}})
        procs.append(ml)
        ks_url, ks = start_kserve(tmp, ["llama_platform_tests.serving.keyword_server", "--name", MODEL, "--features"])
        procs.append(ks)
        yield ml_url, ks_url, ml
    finally:
        for p in procs:
            p.stop()


def test_mlserver_and_kserve_give_the_same_answers(runtimes):
    ml_url, ks_url, _ = runtimes
    ml_v1, ml_v2 = answers(ml_url, MODEL, {"X-API-Key": API_KEY})
    ks_v1, ks_v2 = answers(ks_url, MODEL, {"X-API-Key": API_KEY})
    assert [p["labels"] for p in ml_v1] == [["bug"], ["docs"], ["feature"]]
    assert ml_v1 == ks_v1
    for name in ("labels", "scores", "label_order"):
        assert ml_v2[name]["shape"] == ks_v2[name]["shape"], name
        assert ml_v2[name]["data"] == pytest.approx(ks_v2[name]["data"]) if name == "scores" else \
            ml_v2[name]["data"] == ks_v2[name]["data"], name


def test_mlserver_rejects_bad_input_with_400(runtimes):
    ml_url, _, _ = runtimes
    key = {"X-API-Key": API_KEY}
    bad = {"inputs": [{"name": "title", "shape": [1], "datatype": "INT32", "data": [1]}]}
    r = httpx.post(f"{ml_url}/v2/models/{MODEL}/infer", json=bad, headers=key)
    assert r.status_code == 400 and "BYTES" in r.json()["error"]
    r = httpx.post(f"{ml_url}/v1/models/{MODEL}:predict", content=b"{nope", headers=key)
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    r = httpx.post(f"{ml_url}/v1/models/{MODEL}:predict", json={"instances": [{"title": "t"}]}, headers=key)
    assert r.status_code == 400 and "repo" in r.json()["error"]


def test_mlserver_listens_on_loopback_only(runtimes):
    _, _, ml = runtimes
    procs = [psutil.Process(ml.pid)] + psutil.Process(ml.pid).children(recursive=True)
    listening = {c.laddr.ip for p in procs for c in p.connections(kind="inet") if c.status == psutil.CONN_LISTEN}
    assert "127.0.0.1" in listening
    # gRPC binds dual-stack: the IPv4-mapped form of 127.0.0.1 is still loopback only.
    assert all(_loopback(a) for a in listening), listening


def _loopback(addr: str) -> bool:
    ip = ipaddress.ip_address(addr)
    return ip.is_loopback or bool(getattr(ip, "ipv4_mapped", None) and ip.ipv4_mapped.is_loopback)


@pytest.mark.slow  # ~60 s: trains a tiny model, then loads it in both runtimes
def test_real_model_same_answers_in_both_runtimes(tmp_path):
    from llama_platform_tests.serving.test_real_model import train_tiny

    model_dir = Path(train_tiny(tmp_path)["model_dir"])
    procs = []
    try:
        # Seldon's layout: the model-settings.json (default settings, uri ".") inside the model's folder.
        ml_url, ml = start_mlserver(tmp_path, "llama4-triage", None, model_dir=model_dir)
        procs.append(ml)
        ks_url, ks = start_kserve(tmp_path, ["llama_platform.serving.server", "--model-dir", str(model_dir),
                                             "--name", "llama4-triage"])
        procs.append(ks)
        ml_v1, ml_v2 = answers(ml_url, "llama4-triage", {"X-API-Key": API_KEY})
        ks_v1, ks_v2 = answers(ks_url, "llama4-triage", {"X-API-Key": API_KEY})
    finally:
        for p in procs:
            p.stop()
    assert [p["labels"] for p in ml_v1] == [p["labels"] for p in ks_v1]
    for a, b in zip(ml_v1, ks_v1):
        assert set(a["scores"]) == set(LABELS)
        assert a["scores"] == pytest.approx(b["scores"], abs=1e-4)
    assert ml_v2["scores"]["data"] == pytest.approx(ks_v2["scores"]["data"], abs=1e-4)


def test_openai_client_gets_the_same_answers_from_both_runtimes(runtimes):
    import openai

    ml_url, ks_url, _ = runtimes
    message = {"role": "user", "content": "Title: Docs: typo on the install page\nBody: pip isntall"}
    answers = {}
    for runtime, url in (("mlserver", ml_url), ("kserve", ks_url)):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=API_KEY, max_retries=0, timeout=30)
        assert [m.id for m in client.models.list().data] == [MODEL]
        done = client.chat.completions.create(model=MODEL, messages=[message], metadata={"repo": "octo/tools"})
        streamed = client.chat.completions.create(model=MODEL, messages=[message], metadata={"repo": "octo/tools"},
                                                  stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in streamed)
        answers[runtime] = (done.choices[0].message.content, text, done.model_extra["triage"])
        with pytest.raises(openai.BadRequestError, match="name the repository"):
            client.chat.completions.create(model=MODEL, messages=[message])
    assert answers["mlserver"] == answers["kserve"]
    assert answers["mlserver"][0] == answers["mlserver"][1] == "docs"
    assert answers["mlserver"][2]["context"] == {"repo_stars": len("octo/tools"), "repo_open_issues": 3}
