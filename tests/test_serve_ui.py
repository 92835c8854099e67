"""The web UI in a real browser: Playwright driving Debian's headless chromium against a real server.

Uploads a synthetic float32 GeoTIFF, checks the server-side quick-look and prior overlay, asks the
taught tiny model to detect ships, reads the streamed answer, the box drawn on the canvas with its
lon/lat, downloads the GeoJSON, and saves a screenshot (runs/artifacts/serve-ui.png).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from _priors_world import build_tiles
from _serve_helpers import running_server, write_geotiff
from _serve_model import ANSWER, QUESTION, shared_taught_model
from sarvlm.serve.app import ServeConfig, create_app

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "runs" / "artifacts"


def test_ui_uploads_a_geotiff_streams_the_answer_and_draws_boxes(tmp_path, tmp_path_factory):
    assert CHROMIUM.exists(), "the UI test needs Debian's chromium at /usr/bin/chromium (`make setup` installs it)"
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    build_tiles(tmp_path / "aef")
    tif = tmp_path / "scene.tif"
    write_geotiff(tif, 5.970, 45.028)
    model, processor = shared_taught_model(tmp_path_factory)
    app = create_app(model, processor, ServeConfig(model_id="tiny-taught", priors_source=f"aef-cog:{tmp_path / 'aef'}"))
    shot = tmp_path / "serve-ui.png"
    with running_server(app) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900}, accept_downloads=True)
            foreign: list[str] = []
            chat_requests: list[dict] = []
            page.on(
                "request",
                lambda r: foreign.append(r.url) if not r.url.startswith((base, "data:", "blob:")) else None,
            )
            page.on(
                "request",
                lambda r: (
                    chat_requests.append(json.loads(r.post_data)) if r.url.endswith("/v1/chat/completions") else None
                ),
            )
            page.goto(base + "/ui")
            page.wait_for_selector("#model-name[data-id='tiny-taught']", state="attached")
            page.set_input_files("#sar-file", str(tif))
            page.wait_for_function("document.getElementById('quicklook').naturalWidth === 64")
            assert "prior: year 2020 (asked 2021)" in page.inner_text("#prior-status")
            assert page.get_attribute("#prior-overlay", "src").startswith("data:image/png;base64,")
            assert "georeferenced" in page.inner_text("#image-info")
            assert page.locator("#map polygon.footprint").count() == 1

            page.evaluate(
                """() => { window.__updates = 0;
                new MutationObserver(() => window.__updates++).observe(
                    document.getElementById('messages'), {subtree: true, childList: true, characterData: true}); }"""
            )
            page.fill("#question", QUESTION)
            page.click("#send")
            page.wait_for_selector("#answer[data-done='true']", timeout=90_000)
            assert page.inner_text("#answer") == ANSWER
            assert chat_requests and chat_requests[0]["stream"] is True
            assert page.evaluate("window.__updates") >= 2  # the bubble appeared, then streamed text arrived

            rows = page.locator("#boxes tbody tr")
            assert rows.count() == 1
            cells = rows.first.locator("td").all_inner_texts()
            lon, lat = (float(v) for v in cells[2].split(","))
            assert 5.969 < lon < 5.979 and 45.022 < lat < 45.028  # inside the image footprint
            orange = page.evaluate(
                """() => { const c = document.getElementById('box-canvas');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 200 && d[i+1] < 120 && d[i+3] > 0) n++;
                return n; }"""
            )
            assert orange > 20  # the box outline is drawn on the quick-look
            assert page.locator("#map polygon.box").count() == 1

            with page.expect_download() as info:
                page.click("#download-geojson")
            geojson = json.loads(Path(info.value.path()).read_text())
            assert geojson["type"] == "FeatureCollection" and len(geojson["features"]) == 1
            with page.expect_download() as info:
                page.click("#download-json")
            answer = json.loads(Path(info.value.path()).read_text())
            assert answer["answer"] == ANSWER and answer["sarvlm"]["prior"]["used"] is True

            page.screenshot(path=str(shot), full_page=True)
            assert foreign == []  # no CDN, fonts or analytics: the page works offline
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "serve-ui.png")
    print(f"screenshot: {ARTIFACTS / 'serve-ui.png'}")
