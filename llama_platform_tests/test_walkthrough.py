"""A newcomer's first hour, as they would do it: `llama-platform run --once` twice, `llama-platform ui`,
a request to the endpoint, then the lineage and each asset page in headless Chromium.

Real everything: the CLI as a subprocess (its replay forge, MLflow sqlite, the KServe endpoint, the
Dagster webserver + daemon), Chromium driven by Playwright. Slow (two pipeline runs and a UI start).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from dagster import AssetCheckKey, AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter

from llama_platform.replay.corpus import corpus_repos
from llama_platform.replay.generator import write_corpus
from llama_platform.services import free_port
from llama_platform.settings import load_settings
from llama_platform_tests.support.dagster_ui import CHROMIUM_ARGS

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parents[1]
ASSET_PAGES = {  # asset -> metadata a newcomer should see on its page
    "raw_issues": ["row_count", "pull_requests", "preview"],
    "cleaned_issues": ["label_distribution", "preview"],
    "issue_snapshot": ["snapshot_version", "splits"],
    "dataset_report": ["figure_1"],
    "training_set": ["preview", "example_prompt"],
    "finetuned_checkpoint": ["mlflow_run", "registered_model"],
    "deployed_endpoint": ["endpoint_url"],
}


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llama_platform.cli", *args], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=1500)


def test_first_hour(tmp_path):
    corpus = tmp_path / "corpus"
    write_corpus(corpus, scale=0.1)
    home = tmp_path / "home"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "LLAMA_PLATFORM_HOME": str(home),
        "LLAMA_PLATFORM_CORPUS_DIR": str(corpus),
        "LLAMA_PLATFORM_REPOS": ",".join(corpus_repos(corpus)),
        "LLAMA_PLATFORM_SERVE_PORT": str(free_port()),
        "LLAMA_PLATFORM_MLFLOW_UI_PORT": str(free_port()),
        "LLAMA_PLATFORM_TRAIN_STEPS": "30",
    }
    for k in ("LLAMA_PLATFORM_REPLAY_URL", "LLAMA_PLATFORM_MLFLOW_UI_URL", "DAGSTER_HOME"):
        env.pop(k, None)
    settings = load_settings(env)

    first_t = time.monotonic()
    first = _cli(env, "run", "--once")
    first_t = time.monotonic() - first_t
    assert first.returncode == 0, first.stderr[-3000:]
    second_t = time.monotonic()
    second = _cli(env, "run", "--once")
    second_t = time.monotonic() - second_t
    assert second.returncode == 0, second.stderr[-3000:]
    print(f"first run {first_t:.0f}s, second {second_t:.0f}s: {first_t / second_t:.1f}x")
    assert "built: nothing, all up to date" in second.stdout, second.stdout
    import mlflow

    versions = mlflow.tracking.MlflowClient(settings.mlflow_tracking_uri).search_model_versions(
        f"name='{settings.registered_model_name}'")
    assert len(versions) == 1 and "snapshot" in (versions[0].description or "")

    ui_port = free_port()
    ui = subprocess.Popen([sys.executable, "-m", "llama_platform.cli", "ui", "--ui-port", str(ui_port)], env=env,
                          cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    printed = []
    try:
        for line in ui.stdout:
            printed.append(line)
            if "Press Ctrl-C" in line:
                break
        out = "".join(printed)
        assert f"http://127.0.0.1:{ui_port}" in out and "MLflow UI:" in out and "Endpoint:" in out, out
        predict = re.search(r"Endpoint:\s+(\S+)", out).group(1)
        key = (home / "api_key").read_text().strip()
        body = {"instances": [{"title": "Crash on start", "body": "Traceback ...", "repo": "x/y"}]}
        answer = httpx.post(predict, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        assert answer.status_code == 200, answer.text
        mlflow_ui = re.search(r"MLflow UI:\s+(\S+?)/#", out).group(1)
        _browse(f"http://127.0.0.1:{ui_port}", mlflow_ui, tmp_path)
    finally:
        ui.send_signal(signal.SIGINT)
        ui.wait(timeout=120)

    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    with DagsterInstance.get() as instance:
        live = instance.get_runs(filters=RunsFilter(statuses=[DagsterRunStatus.STARTED, DagsterRunStatus.STARTING]))
        assert live == []
        # the endpoint stopped with `ui`: its check now says so
        check = AssetCheckKey(AssetKey("deployed_endpoint"), "endpoint_answers")
        record = instance.event_log_storage.get_latest_asset_check_execution_by_key([check])[check]
        assert record.event.dagster_event.event_specific_data.passed is False


def _browse(dagster: str, mlflow_ui: str, shots: Path) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "chromium is not installed: `make browser`"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1200})
        page.goto(f"{dagster}/asset-groups", wait_until="networkidle", timeout=120_000)
        skip = page.get_by_role("button", name="Skip")
        if skip.count():
            skip.first.click()
        page.screenshot(path=str(shots / "lineage.png"))
        for asset, labels in ASSET_PAGES.items():
            page.goto(f"{dagster}/assets/{asset}", wait_until="networkidle", timeout=120_000)
            for label in labels:
                page.get_by_text(label, exact=True).first.wait_for(state="visible", timeout=60_000)
            page.screenshot(path=str(shots / f"{asset}.png"), full_page=True)
        # Runs carry stage names, not __ephemeral_asset_job__.
        page.goto(f"{dagster}/runs", wait_until="networkidle", timeout=120_000)
        page.get_by_text("cleaning", exact=True).first.wait_for(state="visible", timeout=60_000)
        assert page.get_by_text("__ephemeral_asset_job__").count() == 0
        # MLflow's experiment opens on its runs.
        page.goto(f"{mlflow_ui}/#/experiments/1?workflowType=machine_learning", wait_until="domcontentloaded",
                  timeout=120_000)  # it keeps polling: no network idle
        page.get_by_text(re.compile(r"dagster-[0-9a-f]{8}")).first.wait_for(state="visible", timeout=60_000)
        page.screenshot(path=str(shots / "mlflow.png"))
        browser.close()
