"""Screenshot of the `completion serve` page for the README (docs/serve.png), taken in headless
Chromium: a bundled sample face, a painted stroke over the eyes, four candidates.

    python samples/make_screenshot.py [--out docs/serve.png]
"""

from __future__ import annotations

import argparse
import io
import shutil
import socket
import threading
import time
from pathlib import Path

import uvicorn
from PIL import Image
from playwright.sync_api import sync_playwright

from completion.bundle import default_model_path, load_model
from completion.complete import Completer
from completion.serve import create_app

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "serve.png")
    ap.add_argument("--sample", default="face_02.png")
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(
        uvicorn.Config(
            create_app(Completer(load_model(default_model_path()))), port=port, log_level="warning"
        )
    )
    threading.Thread(target=srv.run, daemon=True).start()
    while not srv.started:
        time.sleep(0.05)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
        page = browser.new_page(viewport={"width": 1320, "height": 700})
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_function("document.querySelectorAll('#sample option').length > 1")
        page.select_option("#sample", args.sample)
        page.wait_for_selector(f"#stage[data-loaded='{args.sample}']")
        page.eval_on_selector("#brush", "e => { e.value = 40; e.dispatchEvent(new Event('input')); }")
        box = page.locator("#stage").bounding_box()
        k = box["width"] / 64
        page.mouse.move(box["x"] + 20 * k, box["y"] + 31 * k)
        page.mouse.down()
        for i in range(11):
            page.mouse.move(box["x"] + (20 + 2.4 * i) * k, box["y"] + 31 * k)
        page.mouse.up()
        page.click("#complete")
        page.wait_for_selector("#candidates figure.on")
        page.wait_for_timeout(700)
        shot = page.screenshot(full_page=True)
        browser.close()
    srv.should_exit = True
    img = Image.open(io.BytesIO(shot)).convert("RGB").quantize(colors=128)  # keeps the file small
    args.out.parent.mkdir(parents=True, exist_ok=True)
    img.save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
