"""The app in Debian Chromium through Playwright: what a person sees after uploading and pressing buttons.

Needs ``/usr/bin/chromium`` (``.ci/run`` installs it) and the bundled checkpoint; without either it fails.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from video_corpus import BROKEN

from analysis import get_table, model_mixing_row, relative_position_biases
from analysis.plots import figure_bytes, plot_table
from demo.handlers import ATTRIBUTIONS
from posmlp_video.checkpoint import (
    BUNDLED_CHECKPOINT,
    load_checkpoint,
    read_meta,
    save_checkpoint,
    update_meta,
)
from posmlp_video.models import PosMLPVideo
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

    page.locator("#classify-input input[type=file]").set_input_files(str(clip))
    page.locator("#classify-preview video").wait_for()
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
    groups = get_table(relative_position_biases(load_checkpoint()[0]), 0, 0, "spatial").groups
    assert page.evaluate(TRACE_TYPES) == ["heatmap"] * groups  # one panel per channel group

    page.get_by_role("tab", name="Attributions").click()
    page.click("#attr-button")
    page.locator("#attr-overlay video").wait_for()
    page.wait_for_function("() => { const v = document.querySelector('#attr-overlay video');"
                           " return v && v.readyState >= 2 && v.duration > 0 && v.videoWidth > 0; }")
    assert expected[0][0] in page.locator("#attr-text").inner_text()


def test_checkpoint_picker_and_upload_in_chromium(page, app_server, tmp_path):
    page.get_by_text("Checkpoint", exact=True).click()
    page.locator("#ckpt-picker input").click()
    options = page.locator("[role=option]").all_inner_texts()
    assert "copy.safetensors" in options and "link_out.safetensors" not in options  # not the symlink out
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


# ---------------------------------------------------------------------- issue 14: the app as a person meets it

RESULTS_EMPTY = ("() => !document.querySelector('#classify-strip img') && "
                 "!document.querySelector('#classify-label [data-testid=label-output-value]') && "
                 "document.querySelector('#classify-timing').innerText.trim() === ''")


def _classify(page, path: Path) -> None:
    page.locator("#classify-input input[type=file]").set_input_files(str(path))
    page.locator("#classify-preview video").wait_for()
    page.click("#classify-button")
    page.locator("#classify-strip img").wait_for()


def _top1(page) -> str:
    return page.locator("#classify-label [data-testid=label-output-value]").inner_text()


def _pick_checkpoint(page, name: str) -> None:
    page.get_by_text("Checkpoint", exact=True).click()
    page.get_by_role("button", name="Refresh list").click()
    page.locator("#ckpt-picker input").click()
    page.locator("[role=option]", has_text=name).click()
    page.click("#ckpt-pick")
    page.wait_for_function(f"() => document.querySelector('#ckpt-status').innerText.includes('{name}')")


@pytest.fixture(scope="module")
def extra_checkpoints(app_server):
    """In the app's checkpoint folder: the bundled model with a card (summary, calibrated threshold 0.5), and a
    small random model with joint (spatiotemporal) units and SynthMotion's classes."""
    carded = app_server.folder / "carded.safetensors"
    carded.write_bytes(BUNDLED_CHECKPOINT.read_bytes())
    update_meta(carded, {"card": {"summary": "A test card: recognises twelve SynthMotion motions.",
                                  "confidence": {"min_prob": 0.5, "how": "test threshold"}}})
    meta = load_checkpoint()[1]
    torch.manual_seed(0)
    model = PosMLPVideo(num_classes=12, num_frames=8, img_size=32, embed_dims=(16, 16, 32, 32), depths=(1, 1, 1, 1),
                        spatial_windows=(4, 4, 2, 2), gammas=(2, 2, 2, 2), block_types=("joint",) * 4,
                        table_init="trunc_normal")
    joint = save_checkpoint(model, app_server.folder / "joint.safetensors",
                            {k: meta[k] for k in ("class_names", "num_frames", "input_size", "mean", "std")})
    return dict(carded=carded, joint=joint)


def test_outputs_clear_on_a_new_clip_and_on_an_error(page, app_server, video_corpus):
    _classify(page, app_server.examples[2])
    assert _top1(page)
    page.locator("#classify-input button[aria-label=Clear]").click()  # remove the clip: results go with it
    page.wait_for_function(RESULTS_EMPTY)
    _classify(page, app_server.examples[3])
    page.locator("#classify-input button[aria-label=Clear]").click()
    page.locator("#classify-input input[type=file]").set_input_files(str(video_corpus["text_as_mp4"]))
    page.wait_for_function(RESULTS_EMPTY)  # the new (unreadable) clip left no old results
    page.click("#classify-button")
    # the one-line reason twice: the preview's warning, then Classify's error; the outputs stay empty
    page.get_by_text(BROKEN["text_as_mp4"][1], exact=False).nth(1).wait_for()
    page.wait_for_function(RESULTS_EMPTY)  # (while a run is pending, the status tracker writes into outputs)


def test_an_example_click_runs_it_and_examples_carry_their_true_class(page, app_server):
    from demo.examples import example_class

    clip = app_server.examples[4]
    expected = Predictor.from_checkpoint().predict(clip).top[0][0]
    button = page.get_by_role("button", name=example_class(clip), exact=True).first
    button.click()
    page.locator("#classify-strip img").wait_for()
    assert _top1(page) == expected
    page.locator("#classify-preview video").wait_for()


def test_header_card_switches_with_the_checkpoint_and_the_note_follows_its_rule(page, app_server, extra_checkpoints):
    header = page.locator("#model-header")
    bundled = read_meta(BUNDLED_CHECKPOINT)["card"]["confidence"]["min_prob"]  # the bundled model's own rule
    assert f"below {100 * bundled:.0f}%" in header.inner_text()
    _pick_checkpoint(page, "carded.safetensors")
    page.wait_for_function("() => document.querySelector('#model-header').innerText.includes('A test card')")
    assert "below 50%" in header.inner_text()
    clip = app_server.examples[6]
    top = Predictor(*load_checkpoint(extra_checkpoints["carded"])).predict(clip).top[0]
    _classify(page, clip)
    note = page.locator("#classify-note").inner_text()
    assert ("Uncertain" in note) == (top[1] < 0.5) and "50%" in note


def test_dt_keyboard_change_redraws_and_export_equals_the_plot(page, app_server, extra_checkpoints):
    _pick_checkpoint(page, "joint.safetensors")
    page.get_by_role("tab", name="Biases").click()
    page.locator("#bias-unit").get_by_label("spatiotemporal").check()
    page.wait_for_function("() => document.querySelector('#bias-plot .gtitle')?.textContent.includes('Δt = 0')")
    page.locator("#bias-dt input[type=range]").focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => document.querySelector('#bias-plot .gtitle')?.textContent.includes('Δt = 1')")
    title = page.locator("#bias-plot .gtitle").text_content()
    page.click("#bias-export")
    link = page.locator("#bias-file a").first
    link.wait_for()
    body = page.request.get(link.get_attribute("href")).body()
    tables = relative_position_biases(load_checkpoint(extra_checkpoints["joint"])[0])
    table = get_table(tables, 0, 0, "spatiotemporal")
    assert title.startswith(table.name) and body == figure_bytes(plot_table(table, None, 1), "png")
    page.locator("#bias-dt input[type=number]").fill("-1")
    page.locator("#bias-dt input[type=number]").press("Enter")
    page.wait_for_function("() => document.querySelector('#bias-plot .gtitle')?.textContent.includes('Δt = -1')")
    page.wait_for_function("() => !document.querySelector('#bias-file a')")  # the old export is gone


def test_grad_cam_stage_selector(page, app_server):
    page.get_by_role("tab", name="Attributions").click()
    page.locator("#attr-input input[type=file]").set_input_files(str(app_server.examples[1]))
    page.locator("#attr-method input").click()
    page.locator("[role=option]", has_text="grad_cam").click()
    stage = page.locator("#attr-cam-stage input")
    stage.wait_for()
    model, meta = load_checkpoint()
    maps = model.forward_intermediates(torch.zeros(1, 3, meta["num_frames"], *meta["input_size"]),
                                       intermediates_only=True)
    deepest = max(i for i, m in enumerate(maps) if m.shape[-2] * m.shape[-1] > 1)  # deepest map larger than 1 x 1
    t, h, w = maps[deepest].shape[-3:]
    assert stage.input_value() == f"stage {deepest}: {t} x {h} x {w} map"
    assert f"deepest stage whose map is still larger than 1 x 1, here stage {deepest}" in page.locator(
        "#attr-cam-stage").inner_text()  # the rule, in words, with this checkpoint's answer
    stage.click()
    page.locator("[role=option]", has_text="stage 1:").click()
    page.click("#attr-button")
    page.wait_for_function("() => document.querySelector('#attr-text')?.innerText.includes('on stage 1')")
    page.locator("#attr-strip img").wait_for()


def test_a_gif_upload_is_previewed_and_classified(page, video_corpus):
    gif = video_corpus["gif"]
    _classify(page, gif)
    page.wait_for_function("() => { const v = document.querySelector('#classify-preview video');"
                           " return v && v.readyState >= 2 && v.videoWidth > 0; }")  # H.264: the browser plays it
    assert _top1(page) == Predictor.from_checkpoint().predict(gif).top[0][0]


def test_query_token_view(page):
    page.get_by_role("tab", name="How positions mix").click()
    page.locator("#mix-unit").get_by_label("spatial").check()
    page.wait_for_function("() => document.querySelector('#mix-view h4')?.innerText.includes('spatial')")
    model = load_checkpoint()[0]
    key = page.locator("#mix-view .key").nth(3 * 8 + 5)  # key token (3, 5) of the 8 x 8 window
    key.hover()
    cell = key.get_attribute("data-cell")
    lit = page.locator("#mix-view .off.hl")
    assert lit.count() == 1 and lit.get_attribute("data-cell") == cell
    query = tuple(int(v) for v in page.locator("#mix-query textarea, #mix-query input").first.input_value().split(","))
    row = model_mixing_row(model, 0, 0, "spatial", 0, query)
    assert tuple(int(v) for v in cell.split(",")) == row.table_cell((3, 5))
    assert f"weight {row.weights[3, 5]:+.4f}" in key.get_attribute("title")
    key.click()
    page.wait_for_function("() => document.querySelector('#mix-view h4')?.innerText.includes('query (3, 5)')")
    star = page.locator("#mix-view .key.query")
    assert star.count() == 1 and star.get_attribute("data-query") == "3,5"
    outlined = sorted(json.loads(f"[{c}]") for c in page.locator("#mix-view .off.read").evaluate_all(
        "els => els.map(e => e.dataset.cell)"))
    # query (3, 5) reads offsets Δh = 3-7..3, Δw = 5-7..5, i.e. table cells (Δ + 7) 3..10 x 5..12
    expected = [list(c) for c in np.ndindex(15, 15) if 3 <= c[0] <= 10 and 5 <= c[1] <= 12]
    assert outlined == expected


def test_the_picker_lists_the_folder_as_it_is_and_a_removed_pick_says_so(page, app_server):
    late = app_server.folder / "late.safetensors"
    shutil.copy(BUNDLED_CHECKPOINT, late)  # added after the server started
    try:
        page.reload()  # a page load lists the folder anew: no Refresh needed
        page.get_by_text("Checkpoint", exact=True).click()
        page.locator("#ckpt-picker input").click()
        page.locator("[role=option]", has_text="late.safetensors").click()
        late.unlink()  # removed after it was listed
        page.click("#ckpt-pick")
        page.get_by_text("no checkpoint named 'late.safetensors'").first.wait_for()
        page.wait_for_function("() => !document.querySelector('#ckpt-picker input').value")  # re-listed
        page.locator("#ckpt-picker input").click()
        options = page.locator("[role=option]").all_inner_texts()
        assert "late.safetensors" not in options and "copy.safetensors" in options
        assert "Loaded" not in page.locator("#ckpt-status").inner_text()
    finally:
        late.unlink(missing_ok=True)


def test_cancel_stops_a_running_attribution(page, app_server):
    page.get_by_role("tab", name="Attributions").click()
    page.locator("#attr-input input[type=file]").set_input_files(str(app_server.examples[1]))
    page.locator("#attr-steps input[type=number]").fill("128")
    page.locator("#attr-steps input[type=number]").press("Enter")
    page.click("#attr-button")
    start = time.monotonic()
    passes = page.get_by_text(re.compile(r"\b([2-9]|\d\d+)/\d+ passes")).first  # the bar counts passes
    passes.wait_for()
    done, total = map(int, re.search(r"(\d+)/(\d+) passes", passes.inner_text()).groups())
    assert page.locator("#attr-button").is_disabled()
    page.click("#attr-cancel")
    per_pass = (time.monotonic() - start) / done
    page.get_by_text("Attribution cancelled").wait_for()
    page.wait_for_function("() => !document.querySelector('#attr-button').disabled")
    assert not page.locator("#attr-cancel").is_visible() and not page.locator("#attr-overlay video").count()
    # the run stopped at its next pass: the attribution worker is free long before the rest would have run
    waited = time.monotonic()
    ATTRIBUTIONS.submit(lambda: None).result(timeout=600)
    waited = time.monotonic() - waited
    print(f"cancel at pass {done}/{total} ({per_pass:.2f} s a pass): the worker was free {waited:.2f} s later")
    assert total - done >= 8 and waited < 0.5 * per_pass * (total - done), (done, total, per_pass, waited)
    # the worker is free again: a quick saliency run finishes, and Classify still answers
    page.locator("#attr-method input").click()
    page.locator("[role=option]", has_text="saliency").click()
    page.click("#attr-button")
    page.wait_for_function("() => document.querySelector('#attr-text')?.innerText.includes('saliency')")
    page.get_by_role("tab", name="Classify").click()
    clip = app_server.examples[2]
    _classify(page, clip)
    assert _top1(page) == Predictor.from_checkpoint().predict(clip).top[0][0]


BEHIND = ("(selector) => { for (let e = document.querySelector(selector); e; e = e.parentElement) {"
          " const c = getComputedStyle(e).backgroundColor;"
          " if (c !== 'transparent' && !/rgba\\(.*, 0\\)$/.test(c)) return c; }"
          " return getComputedStyle(document.body).backgroundColor; }")


def _contrast(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """WCAG contrast ratio of two sRGB colours (0-255)."""
    def luminance(rgb):
        c = np.asarray(rgb[:3], float) / 255
        c = np.where(c <= 0.03928, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
        return float(c @ [0.2126, 0.7152, 0.0722])

    high, low = sorted([luminance(a), luminance(b)], reverse=True)
    return (high + 0.05) / (low + 0.05)


def _rgb(css: str) -> tuple[float, ...]:
    return tuple(float(v) for v in re.findall(r"[\d.]+", css))


def _image(page, selector: str) -> np.ndarray:
    """The RGBA pixels of the image shown at `selector` (a file URL or a data URL)."""
    src = page.locator(selector).first.get_attribute("src")
    data = base64.b64decode(src.split(",", 1)[1]) if src.startswith("data:") else page.request.get(src).body()
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))


def test_plots_are_transparent_with_readable_text_on_the_dark_theme(browser, app_server):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(app_server.url + "?__theme=dark")
    try:
        page.wait_for_function("() => document.body.classList.contains('dark')")  # set once the app has loaded
        page.get_by_role("tab", name="Biases").click()
        page.locator("#bias-plot .main-svg").first.wait_for()
        behind = _rgb(page.evaluate(BEHIND, "#bias-plot .main-svg"))  # the first opaque colour behind the plot
        assert max(behind[:3]) < 80  # dark
        paper = page.evaluate("() => getComputedStyle(document.querySelector('#bias-plot .main-svg')).backgroundColor")
        assert _rgb(paper)[3:] == (0.0,)  # transparent: the page's dark background shows through
        title = _rgb(page.evaluate("() => getComputedStyle(document.querySelector('#bias-plot .gtitle')).fill"))
        assert _contrast(title, behind) >= 3 and _contrast(title, (255, 255, 255)) >= 3  # readable on both themes

        page.get_by_role("tab", name="Attributions").click()  # a matplotlib image: the attribution strip
        page.locator("#attr-input input[type=file]").set_input_files(str(app_server.examples[1]))
        page.locator("#attr-method input").click()
        page.locator("[role=option]", has_text="saliency").click()
        page.click("#attr-button")
        page.locator("#attr-strip img").wait_for()
        page.get_by_role("tab", name="Timeline").click()  # and the timeline's matplotlib plot
        page.locator("#timeline-video input[type=file]").set_input_files(str(app_server.examples[1]))
        page.locator("#timeline-video video").wait_for()
        page.click("#timeline-button")
        page.locator("#timeline-plot img").wait_for()
        # where text is: the strip's title band (top), the timeline's y axis (left)
        for selector, text_band in (("#attr-strip img", lambda p: p[: len(p) // 8]),
                                    ("#timeline-plot img", lambda p: p[:, : p.shape[1] // 20])):
            pixels = _image(page, selector)
            assert pixels[0, 0, 3] == 0 and pixels[-1, -1, 3] == 0, selector  # no white block around the plot
            band = text_band(pixels)
            text = band[band[..., 3] == 255][:, :3].astype(int)  # opaque pixels: the text
            assert len(text) > 50 and abs(np.median(text) - 128) <= 20, selector  # mid-grey, not black or white
    finally:
        page.close()
