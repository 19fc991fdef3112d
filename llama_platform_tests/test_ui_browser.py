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


def _shown(page, key: str) -> bool:
    """True when the lineage graph shows `key`: as a node name, or (zoomed out) an elided
    name like `finetu…_checkpoint` whose hover tooltip gives the full key."""
    if page.get_by_text(key, exact=True).count():
        return True
    for node in page.locator("[class*='minimalName']").all():
        head, _, tail = node.inner_text().partition("…")
        if tail and key.startswith(head) and key.endswith(tail):
            node.hover()
            page.get_by_text(key, exact=True).first.wait_for(state="visible", timeout=10_000)
            return True
    return False


def test_lineage_shows_every_asset(dagster_ui, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed: `make test` installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    keys = sorted(k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys())
    # DESIGN.md's ten stages plus the H2O baseline and the error-analysis notebook (issue 11).
    assert len(keys) == 12 and {"baseline_model", "error_analysis"} <= set(keys)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1800, "height": 1200})
        page.goto(f"{dagster_ui.url}/asset-groups", wait_until="networkidle", timeout=120_000)
        skip = page.get_by_role("button", name="Skip")
        if skip.count():  # the "Join the Dagster community" dialog of a fresh profile
            skip.first.click()
        # Groups start collapsed: expand each, then reload so the graph is laid out to fit.
        page.locator('[aria-label="unfold_more"]').first.wait_for(timeout=60_000)
        for _ in range(20):
            unfold = page.locator('[aria-label="unfold_more"]')
            if unfold.count() == 0:
                break
            unfold.first.click()
            page.wait_for_timeout(300)
        page.reload(wait_until="networkidle")
        page.get_by_text("raw_issues", exact=True).first.wait_for(state="visible", timeout=60_000)
        page.screenshot(path=str(tmp_path / "lineage.png"))
        missing = [k for k in keys if not _shown(page, k)]
        browser.close()
    assert not missing, f"asset keys not shown in the lineage view: {missing}"


# Gitee issue titles are Chinese: without a CJK font every glyph is the same empty box.
ZH_TEXT = "数据质量报告"


def test_chinese_text_renders_with_real_glyphs():
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed: `make browser` installs it with a CJK font")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_content("<canvas id=c width=64 height=64></canvas>")
        # Each character drawn alone: real glyphs differ pixel by pixel, the missing-glyph box is the
        # same for all; a CJK glyph is about one em wide.
        drawn = page.evaluate("""(text) => {
            const ctx = document.getElementById('c').getContext('2d');
            ctx.font = '40px sans-serif';
            return [...text].map(ch => {
                ctx.clearRect(0, 0, 64, 64);
                ctx.fillText(ch, 8, 48);
                const px = ctx.getImageData(0, 0, 64, 64).data;
                let ink = 0; for (let i = 3; i < px.length; i += 4) ink += px[i] > 0;
                return {width: ctx.measureText(ch).width, ink, pixels: Array.from(px.filter((_, i) => i % 4 === 3)).join(',')};
            });
        }""", ZH_TEXT)
        browser.close()
    assert all(d["ink"] > 0 for d in drawn), "Chinese characters drew nothing"
    assert len({d["pixels"] for d in drawn}) == len(drawn), "every Chinese character drew the same box: no CJK font"
    assert all(36 <= d["width"] <= 44 for d in drawn), [d["width"] for d in drawn]
