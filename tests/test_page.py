"""The page in a real headless Chromium: pick a sample, paint a stroke over the face, Complete, and
the returned image differs from the input only near the stroke.

Needs Debian's `chromium` (apt-get install chromium) and Playwright's Python package; Playwright's
own browser downloads are not used."""

from __future__ import annotations

import base64
import io
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip(
        "no chromium on this machine (apt-get install chromium): page test skipped", allow_module_level=True
    )
playwright = pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed")
uvicorn = pytest.importorskip("uvicorn")

from completion.bundle import default_model_path, load_model  # noqa: E402
from completion.complete import Completer  # noqa: E402
from completion.serve import create_app  # noqa: E402

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SAMPLE = Path(__file__).resolve().parents[1] / "completion" / "web" / "samples" / "face_01.png"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():  # noqa: ANN201
    """The real app with the shipped model, served by uvicorn in a thread on a free local port."""
    app = create_app(Completer(load_model(default_model_path())))
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="on")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{config.port}"
    srv.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def browser():  # noqa: ANN201
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def near_segment(h: int, w: int, a: tuple[float, float], b: tuple[float, float], radius: float) -> np.ndarray:
    """HxW bool: pixel centres within `radius` of the segment a-b (image coordinates)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    ax, ay = a
    dx, dy = b[0] - ax, b[1] - ay
    t = np.clip(((xx - ax) * dx + (yy - ay) * dy) / (dx * dx + dy * dy), 0, 1)
    return np.hypot(xx - (ax + t * dx), yy - (ay + t * dy)) <= radius


def test_paint_complete_download(server: str, browser) -> None:  # noqa: ANN001
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(180_000)  # a busy CI machine may take a while; this is no timing test
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server + "/")
    page.wait_for_function("document.querySelectorAll('#sample option').length > 1")
    page.select_option("#sample", "face_01.png")
    page.wait_for_selector("#stage[data-loaded='face_01.png']")
    page.fill("#samples", "3")
    page.fill("#seed", "0")

    # A stroke across the eyes of the 64x64 face, brush 40 screen px.
    page.eval_on_selector("#brush", "e => { e.value = 40; e.dispatchEvent(new Event('input')); }")
    box = page.locator("#stage").bounding_box()
    scale = box["width"] / 64
    a, b = (20.0, 30.0), (44.0, 30.0)  # image coordinates
    page.mouse.move(box["x"] + a[0] * scale, box["y"] + a[1] * scale)
    page.mouse.down()
    for k in range(1, 11):
        x = a[0] + (b[0] - a[0]) * k / 10
        page.mouse.move(box["x"] + x * scale, box["y"] + a[1] * scale)
    page.mouse.up()

    with page.expect_response("**/api/complete", timeout=300_000) as info:
        page.click("#complete")
    response = info.value
    assert response.status == 200, response.text()
    body = response.json()
    page.wait_for_selector("#candidates figure.on")

    cands = body["candidates"]
    assert len(cands) == 3 and [c["loss"] for c in cands] == sorted(c["loss"] for c in cands)
    before = np.asarray(Image.open(SAMPLE).convert("RGB")).astype(int)
    after = np.asarray(Image.open(io.BytesIO(base64.b64decode(cands[0]["png"]))).convert("RGB")).astype(int)
    changed = (after != before).any(axis=2)
    radius = 40 / scale / 2  # the brush, in image pixels
    assert changed.sum() > 0.5 * near_segment(64, 64, a, b, radius).sum()  # the hole was filled
    # Nothing changed away from the stroke (one pixel of slack for the brush's anti-aliased edge).
    assert not (changed & ~near_segment(64, 64, a, b, radius + 1.5)).any()

    # The page shows the chosen candidate and offers it for download.
    href = page.get_attribute("#download", "href")
    assert href == "data:image/png;base64," + cands[0]["png"]
    assert page.get_attribute("#download", "download") == f"face_01-completed-seed{cands[0]['seed']}.png"
    page.click("#candidates figure:nth-child(2)")
    assert page.get_attribute("#after", "data-seed") == str(cands[1]["seed"])
    assert not errors
    page.close()
