"""Screenshots of the `completion serve` page for the README, taken in headless Chromium: the
public-domain astronaut (scikit-image), a stroke painted over her eyes, four candidates, the
result zoomed to the face. One at 1400x900 (docs/serve.png), one at 390x844 (docs/serve_phone.png).

    python samples/make_screenshot.py [--out docs]
"""

from __future__ import annotations

import argparse
import io
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from PIL import Image
from playwright.sync_api import sync_playwright
from skimage import data

from completion.bundle import default_model_path, load_model
from completion.complete import Completer
from completion.serve import create_app

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
VIEWPORTS = {"serve.png": (1400, 900, False), "serve_phone.png": (390, 844, True)}


def shoot(browser, url: str, photo: Path, width: int, height: int, phone: bool) -> bytes:  # noqa: ANN001
    ctx = browser.new_context(viewport={"width": width, "height": height}, has_touch=phone, is_mobile=phone)
    page = ctx.new_page()
    page.goto(url)
    page.wait_for_function("document.querySelectorAll('#sample option').length > 1")
    page.set_input_files("#file", str(photo))
    page.wait_for_selector(f"#stage[data-loaded='{photo.name}']")
    page.wait_for_selector("#faces button")
    page.eval_on_selector("#brush", "e => { e.value = 24; e.dispatchEvent(new Event('input')); }")
    points = page.evaluate(
        """() => { const p = placement(stage), r = stage.getBoundingClientRect();
            return [[195, 102], [255, 102]].map(([x, y]) =>
                [r.left + p.tx + x * p.s, r.top + p.ty + y * p.s]); }"""
    )
    (x0, y0), (x1, y1) = points
    page.mouse.move(x0, y0)
    page.mouse.down()
    for i in range(11):
        page.mouse.move(x0 + (x1 - x0) * i / 10, y0)
    page.mouse.up()
    page.fill("#samples", "4")
    page.click("#complete")
    page.wait_for_selector("#candidates figure.on")
    page.click("#zface")
    page.wait_for_timeout(500)
    if phone:  # the result, where a phone user looks after Complete
        page.evaluate("() => $('result').scrollIntoView({block: 'start'})")
        page.wait_for_timeout(300)
    shot = page.screenshot()
    ctx.close()
    return shot


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs")
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
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        photo = Path(tmp) / "astronaut.png"
        Image.fromarray(data.astronaut()).save(photo)
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
        for name, (w, h, phone) in VIEWPORTS.items():
            shot = shoot(browser, f"http://127.0.0.1:{port}/", photo, w, h, phone)
            img = Image.open(io.BytesIO(shot)).convert("RGB").quantize(colors=128)  # keeps the file small
            out = args.out / name
            out.parent.mkdir(parents=True, exist_ok=True)
            img.save(out, optimize=True)
            print(f"wrote {out} ({out.stat().st_size // 1024} KB)")
        browser.close()
    srv.should_exit = True


if __name__ == "__main__":
    main()
