"""The app in Debian Chromium through Playwright: what a person sees after uploading and pressing buttons.

Needs ``/usr/bin/chromium`` (``.ci/run`` installs it) and the bundled checkpoint; without either it fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from posmlp_video.predict import Predictor

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 90_000
TRACE_TYPES = "() => document.querySelector('#bias-plot .js-plotly-plot').data.map(t => t.type)"

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.is_file(), "the browser test needs Debian chromium: apt-get install -y chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, app_server):
    """A fresh session on the app; afterwards, checks that the page requested nothing outside the app."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    outside = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(app_server.url) else None)
    page.goto(app_server.url)
    yield page
    page.close()
    assert not [url for url in outside if not url.startswith(("data:", "blob:"))], outside


def test_upload_classify_biases_and_attributions_in_chromium(page, app_server):
    clip = app_server.examples[4]
    expected = Predictor.from_checkpoint().predict(clip, top_k=5).top

    page.locator("#classify-video input[type=file]").set_input_files(str(clip))
    page.locator("#classify-video video").wait_for()
    page.click("#classify-button")
    page.locator("#classify-strip img").wait_for()
    label = page.locator("#classify-label")
    assert label.locator("[data-testid=label-output-value]").inner_text() == expected[0][0]
    rows = label.locator("dt.text").all_inner_texts()
    assert rows == [name for name, _ in expected]
    assert " ms " in page.locator("#classify-timing").inner_text()

    page.get_by_role("tab", name="Biases").click()
    title = page.locator("#bias-plot .js-plotly-plot .gtitle")
    assert title.text_content().startswith("stage 0 block 0 temporal")
    types = page.evaluate(TRACE_TYPES)
    assert types and set(types) == {"scatter"}
    page.locator("#bias-unit").get_by_label("spatial").check()
    page.wait_for_function("() => document.querySelector('#bias-plot .gtitle')?.textContent.includes('spatial')")
    assert page.evaluate(TRACE_TYPES) == ["heatmap"]

    page.get_by_role("tab", name="Attributions").click()
    page.click("#attr-button")
    page.locator("#attr-overlay video").wait_for()
    page.wait_for_function("() => { const v = document.querySelector('#attr-overlay video');"
                           " return v && v.readyState >= 2 && v.duration > 0 && v.videoWidth > 0; }")
    assert expected[0][0] in page.locator("#attr-text").inner_text()


def test_checkpoint_picker_and_upload_in_chromium(page, app_server, tmp_path):
    page.get_by_text("Checkpoint", exact=True).click()
    page.locator("#ckpt-picker input").click()
    assert page.locator("[role=option]").all_inner_texts() == ["copy.safetensors"]  # not the symlink out
    page.locator("[role=option]", has_text="copy.safetensors").click()
    page.click("#ckpt-pick")
    page.wait_for_function("() => document.querySelector('#ckpt-status').innerText.includes('Loaded')")
    page.get_by_role("tab", name="Model").click()
    page.wait_for_function("() => document.querySelector('#model-complexity')?.innerText.includes('copy.safetensors')")
    assert "total" in page.locator("#model-complexity").inner_text()

    fake = tmp_path / "fake.safetensors"
    fake.write_text("not weights")
    page.locator("#ckpt-upload input[type=file]").set_input_files(str(fake))
    page.locator("#ckpt-upload", has_text="fake.safetensors").wait_for()
    page.click("#ckpt-load-upload")
    toast = page.get_by_text("fake.safetensors is not a readable safetensors file")
    toast.wait_for()
    assert "Loaded copy.safetensors" in page.locator("#ckpt-status").inner_text()
