"""The maintainers' page in headless Chromium, against the real server process."""

from __future__ import annotations

import shutil
import sys

import pytest

from llama_platform.services import free_port, start_service, wait_http_ok
from llama_platform_tests.support.dagster_ui import CHROMIUM_ARGS

pytestmark = pytest.mark.slow  # starts a browser (~10 s)

API_KEY = "lpk_page_test_6c2a90"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("page")
    port = free_port()
    cmd = [sys.executable, "-m", "llama_platform_tests.serving.keyword_server", "--name", "triage-test",
           "--http-port", str(port), "--features"]
    proc = start_service("kserve-page", cmd, tmp / "server.log", env={"LLAMA_PLATFORM_API_KEY": API_KEY})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{url}/v2/health/ready", proc, timeout=60)
        yield url
    finally:
        proc.stop()


def test_paste_an_issue_see_labels_scores_and_context(server):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed: `make test` installs it (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{server}/ui")
            # A wrong key: the data call is refused and the page says so.
            page.fill("#key", "not-the-key")
            page.fill("#repo", "acme/widgets")
            page.fill("#title", "Crash: a bug in the parser")
            page.fill("#body", "Traceback (most recent call last) ...")
            page.click("#submit")
            expect(page.locator("#error")).to_contain_text("HTTP 401")
            expect(page.locator("#result")).to_be_hidden()
            # The right key: labels, ranked scores and the repo's online features.
            page.fill("#key", API_KEY)
            page.click("#submit")
            expect(page.locator("#labels")).to_have_text("bug")
            rows = page.locator("#scores tbody tr")
            expect(rows).to_have_count(4)
            assert rows.first.get_attribute("data-label") == "bug"
            scores = [float(rows.nth(i).locator("td").nth(1).inner_text()) for i in range(4)]
            assert scores == sorted(scores, reverse=True) and abs(sum(scores) - 1) < 0.01
            context = page.locator("#context").inner_text()
            assert "repo_stars" in context and str(len("acme/widgets")) in context
            expect(page.locator("#error")).to_have_text("")
            # Text from the request is shown as text, never as HTML.
            page.fill("#title", "<img src=x onerror=alert(1)> docs are wrong")
            page.click("#submit")
            expect(page.locator("#labels")).to_have_text("docs")
            assert page.locator("img").count() == 0
            assert errors == []
        finally:
            browser.close()
