"""The endpoint's protocols on the real server process: the official `openai` client (chat completions,
streaming, model listing), KServe V1/V2 agreeing with it, and the page's /v1/triage call."""

from __future__ import annotations

import sys

import httpx
import openai
import pytest

from llama_platform.services import free_port, start_service, wait_http_ok

API_KEY = "lpk_protocols_51d0e2"
MODEL = "triage-test"
ISSUE = {"title": "Docs: the install page has a typo", "body": "The docs say pip isntall.", "repo": "acme/widgets"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("protocols")
    port = free_port()
    cmd = [sys.executable, "-m", "llama_platform_tests.serving.keyword_server", "--name", MODEL,
           "--http-port", str(port), "--features"]
    proc = start_service("kserve-protocols", cmd, tmp / "server.log", env={"LLAMA_PLATFORM_API_KEY": API_KEY})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{url}/v2/health/ready", proc, timeout=60)
        yield url
    finally:
        proc.stop()


@pytest.fixture()
def client(server):
    return openai.OpenAI(base_url=f"{server}/v1", api_key=API_KEY, max_retries=0, timeout=30)


def _user_message() -> str:
    return f"Title: {ISSUE['title']}\nBody: {ISSUE['body']}"


def test_openai_client_lists_the_model(client, server):
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL]
    # The same path still answers KServe V1's model listing.
    r = httpx.get(f"{server}/v1/models", headers={"X-API-Key": API_KEY})
    assert r.json()["models"] == [MODEL]


def test_openai_chat_completion_matches_v1_predict(client, server):
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "system", "content": "You triage issues."},
                               {"role": "user", "content": _user_message()}],
        metadata={"repo": ISSUE["repo"]},
    )
    (choice,) = completion.choices
    assert choice.message.role == "assistant" and choice.finish_reason == "stop"
    assert choice.message.content == "docs"
    triage = completion.model_extra["triage"]
    assert triage["context"] == {"repo_stars": len(ISSUE["repo"]), "repo_open_issues": 3}  # the online features
    v1 = httpx.post(f"{server}/v1/models/{MODEL}:predict", json={"instances": [ISSUE]},
                    headers={"X-API-Key": API_KEY}).json()["predictions"][0]
    assert triage["labels"] == v1["labels"] and triage["scores"] == pytest.approx(v1["scores"])


def test_openai_streaming_chat_completion(client):
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": f"Repo: {ISSUE['repo']}\n{_user_message()}"}], stream=True,
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "docs"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_openai_errors_reach_the_client_as_exceptions(server, client):
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server}/v1", api_key="wrong", max_retries=0).models.list()
    with pytest.raises(openai.BadRequestError, match="name the repository"):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Title: t"}])
    with pytest.raises(openai.NotFoundError, match="not found"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": _user_message()}],
                                       metadata={"repo": "a/b"})


def test_v2_infer_agrees_with_v1(server):
    body = {"inputs": [{"name": k, "shape": [1], "datatype": "BYTES", "data": [ISSUE[k]]} for k in ("title", "body", "repo")]}
    r = httpx.post(f"{server}/v2/models/{MODEL}/infer", json=body, headers={"X-API-Key": API_KEY})
    assert r.status_code == 200, r.text
    out = {o["name"]: o for o in r.json()["outputs"]}
    assert out["labels"]["data"] == ['["docs"]']
    v1 = httpx.post(f"{server}/v1/models/{MODEL}:predict", json={"instances": [ISSUE]},
                    headers={"X-API-Key": API_KEY}).json()["predictions"][0]
    assert out["scores"]["data"] == pytest.approx([v1["scores"][l] for l in out["label_order"]["data"]])


def test_triage_route_gives_labels_context_and_provenance(server):
    r = httpx.post(f"{server}/v1/triage", json=ISSUE, headers={"Authorization": f"Bearer {API_KEY}"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["labels"] == ["docs"] and body["repo"] == ISSUE["repo"]
    assert body["context"]["repo_stars"] == len(ISSUE["repo"])
    assert body["model"]["name"] == MODEL and body["model"]["batching"]["on"] is True
    assert httpx.post(f"{server}/v1/triage", json=ISSUE).status_code == 401
