"""The Dagster UI, in headless Chromium, shows the asset lineage with every asset key."""

from __future__ import annotations

import shutil

import pytest

from llama_platform.definitions import defs
from llama_platform_tests.support.dagster_ui import CHROMIUM_ARGS, start_dagster_dev

pytestmark = pytest.mark.slow


@pytest.fixture()
def dagster_ui(tmp_path):
    proc = start_dagster_dev(tmp_path, {"LLAMA_PLATFORM_HOME": str(tmp_path / "home")})
    yield proc
    proc.stop()


def test_lineage_shows_every_asset(dagster_ui, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed: `make test` installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    keys = sorted(k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys())
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1800, "height": 1200})
        page.goto(f"{dagster_ui.url}/asset-groups", wait_until="networkidle", timeout=120_000)
        skip = page.get_by_role("button", name="Skip")
        if skip.count():
            skip.first.click()
        for key in keys:
            page.get_by_text(key, exact=True).first.wait_for(state="visible", timeout=60_000)
        page.wait_for_function("!document.body.innerText.includes('Loading')", timeout=60_000)
        page.screenshot(path=str(tmp_path / "lineage.png"), full_page=True)
        text = page.inner_text("body")
        browser.close()
    missing = [k for k in keys if k not in text]
    assert not missing, f"asset keys not shown in the lineage view: {missing}"
    assert len(keys) == 9
