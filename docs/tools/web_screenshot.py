"""Regenerate docs/images/web_ui.png: the web page after an edit, in headless Chromium.

    python docs/tools/web_screenshot.py PORTRAIT.png docs/images/web_ui.png [STYLE] [--no-align] [--refine]

``--no-align`` unticks "Align the face" (for a world render, taken as framed with a frontal camera);
``--refine`` ticks "Refine the detail to the photo".

Needs Debian's chromium and the test extras (playwright); uses the shipped weights.
"""

from __future__ import annotations

import shutil
import socket
import sys

from playwright import sync_api

from pe3d.web import WebSettings, serve
from pe3d.web.limits import UploadLimits

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main(portrait: str, out: str, style: str = "bronze_statue", align: bool = True, refine: bool = False) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = serve(WebSettings(port=port, resolution=128, view_yaws_deg=[-30.0, 30.0], limits=UploadLimits()), block=False)
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(120_000)
            page.goto(f"http://127.0.0.1:{port}/")
            if not align:
                page.locator("#align input[type=checkbox]").uncheck()
            if refine:
                page.locator("#refine input[type=checkbox]").check()
            page.locator("#portrait input[type=file]").set_input_files(portrait)
            page.wait_for_function("document.querySelector('#preview img') !== null")
            page.locator("#style input").click()
            page.get_by_role("option", name=style).click()
            page.locator("#edit-button").click()
            page.wait_for_function("(document.querySelector('#edit-status')?.innerText ?? '').startsWith('edited')")
            page.wait_for_timeout(1500)
            page.screenshot(path=out, full_page=True)
            browser.close()
    finally:
        app.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a not in ("--no-align", "--refine")]
    main(*args, align="--no-align" not in sys.argv[1:], refine="--refine" in sys.argv[1:])
