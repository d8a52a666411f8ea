"""Regenerate the README's screenshots of the app: ``python -m docs.make_screenshot [CLASSIFY.png [MIXING.png]]``.

Serves the app (bundled checkpoint) on a free loopback port, classifies one SynthMotion example in headless
Debian Chromium and saves the Classify tab, then the "How positions mix" tab with a key token hovered, as
small palette PNGs.
"""

from __future__ import annotations

import socket
import sys
import tempfile
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

from demo import build_app, launch
from demo.examples import render_examples

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main(out: Path = Path("docs/figures/app_classify.png"), mixing: Path = Path("docs/figures/app_mixing.png"),
         example: int = 5) -> None:
    clip = render_examples(Path(tempfile.mkdtemp(prefix="posmlp-shot-")))[example]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = build_app()
    launch(app, port=port, prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1100, "height": 1330})
            page.set_default_timeout(90_000)
            page.goto(f"http://127.0.0.1:{port}/")
            page.locator("#classify-input input[type=file]").set_input_files(str(clip))
            page.locator("#classify-preview video").wait_for()
            page.click("#classify-button")
            page.locator("#classify-strip img").wait_for()
            page.wait_for_timeout(500)
            page.screenshot(path=str(out))
            page.get_by_role("tab", name="How positions mix").click()
            page.locator("#mix-unit").get_by_label("spatial").check()
            page.wait_for_function("() => document.querySelector('#mix-view h4')?.innerText.includes('spatial')")
            page.locator("#mix-view .key").nth(5 * 8 + 1).hover()  # key (5, 1): its offset lights up in the table
            page.wait_for_timeout(300)
            page.screenshot(path=str(mixing))
            browser.close()
    finally:
        app.close()
    for path in (out, mixing):
        Image.open(path).convert("RGB").quantize(colors=128).save(path, optimize=True)
        print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main(*(Path(a) for a in sys.argv[1:3]))
