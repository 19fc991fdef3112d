"""Through the real Dagster webserver + daemon: the repo registry sensor registers a repo and backfills
its history, a range backfill launched like the UI launches it (GraphQL) writes exactly the windows
asked for, and the UI shows the repo x window partitions and the sensors (headless Chromium)."""

from __future__ import annotations

import shutil
import time
from urllib.parse import quote

import httpx
import pytest
from dagster import MultiPartitionKey

from llama_platform.replay.generator import write_corpus
from llama_platform.replay.forge import ReplayForgeServer
from llama_platform_tests.support.dagster_ui import CHROMIUM_ARGS, start_dagster_dev

pytestmark = pytest.mark.slow
REPO = "github:weavekit/weave"

RUNS = """query { runsOrError { ... on Runs { results { runId status tags { key value } } } } }"""
LAUNCH = """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
BACKFILL = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  ... on PartitionBackfill { status } ... on PythonError { message } } }"""


def _gql(url: str, query: str, variables: dict | None = None) -> dict:
    response = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(2)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture()
def stack(tmp_path):
    corpus = tmp_path / "corpus"
    write_corpus(corpus, scale=0.1)
    home = tmp_path / "home"
    with ReplayForgeServer(corpus) as forge:  # stopped even if the UI fails to start
        env = {
            "LLAMA_PLATFORM_HOME": str(home),
            "LLAMA_PLATFORM_REPLAY_URL": forge.url,
            "LLAMA_PLATFORM_REPOS": REPO,
            "LLAMA_PLATFORM_HISTORY_START": "2025-06-01",
            "LLAMA_PLATFORM_AUTOMATION": "off",  # keep this test to ingestion: no downstream training runs
        }
        ui = start_dagster_dev(tmp_path, env)
        yield ui, forge, home
        ui.stop()


def _stored(home) -> set[str]:
    folder = home / "store" / "assets" / "raw_issues"
    return {p.name for p in folder.glob("*.parquet")} if folder.exists() else set()


def test_sensors_partitions_and_range_backfill_through_the_ui(stack, tmp_path):
    ui, forge, home = stack

    def registry_run_succeeded():
        runs = _gql(ui.url, RUNS)["runsOrError"]["results"]
        by_sensor = [r for r in runs if {"key": "dagster/sensor_name", "value": "repo_registry_sensor"} in r["tags"]]
        assert not any(r["status"] == "FAILURE" for r in by_sensor), by_sensor
        return any(r["status"] == "SUCCESS" for r in by_sensor)

    _wait(registry_run_succeeded, 240, "the repo registry sensor's history backfill")
    history = _stored(home)
    assert len(history) >= 12  # every window since 2025-06 of the new repo

    # A range backfill as the UI launches it: three windows of the repo (removed from the store
    # first, so their files must be written again), one run, one pass.
    windows = ["2025-07-01", "2025-08-01", "2025-09-01"]
    names = [str(MultiPartitionKey({"repo": REPO, "window": w})) for w in windows]
    for name in names:
        (home / "store" / "assets" / "raw_issues" / (quote(name, safe="") + ".parquet")).unlink(missing_ok=True)
    before = _stored(home)
    forge.reset()
    launched = _gql(ui.url, LAUNCH, {"p": {"assetSelection": [{"path": ["raw_issues"]}], "partitionNames": names}})
    result = launched["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", result
    status = _wait(
        lambda: (s := _gql(ui.url, BACKFILL, {"id": result["backfillId"]})["partitionBackfillOrError"]["status"])
        in ("COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED") and s,
        240,
        "the range backfill",
    )
    assert status == "COMPLETED_SUCCESS"
    assert _stored(home) - before == {quote(n, safe="") + ".parquet" for n in names}
    assert forge.stats()["total"] <= 6  # one paginated pass per kind since 2025-07, not one per window

    chromium = shutil.which("chromium")
    assert chromium, "chromium is not installed: `make test` installs it"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1200})
        page.goto(f"{ui.url}/assets/raw_issues?view=partitions", wait_until="networkidle", timeout=120_000)
        page.get_by_text(REPO).first.wait_for(state="visible", timeout=60_000)
        page.screenshot(path=str(tmp_path / "partitions.png"))
        page.goto(f"{ui.url}/automation", wait_until="networkidle", timeout=120_000)
        for sensor in ("repo_registry_sensor", "forge_freshness_sensor", "automation_sensor"):
            page.get_by_text(sensor, exact=True).first.wait_for(state="visible", timeout=60_000)
        page.screenshot(path=str(tmp_path / "automation.png"))
        browser.close()
