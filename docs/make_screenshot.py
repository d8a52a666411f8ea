"""Regenerate the README's screenshot of the app: ``python -m docs.make_screenshot [OUT.png]``.

Serves the app (bundled checkpoint) on a free loopback port, classifies one SynthMotion example in headless
Debian Chromium and saves the Classify tab as a small palette PNG.
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


def main(out: Path = Path("docs/figures/app_classify.png"), example: int = 5) -> None:
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
            page.locator("#classify-video input[type=file]").set_input_files(str(clip))
            page.locator("#classify-video video").wait_for()
            page.click("#classify-button")
            page.locator("#classify-strip img").wait_for()
            page.wait_for_timeout(500)
            page.screenshot(path=str(out))
            browser.close()
    finally:
        app.close()
    Image.open(out).convert("RGB").quantize(colors=128).save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main(*(Path(a) for a in sys.argv[1:2]))
