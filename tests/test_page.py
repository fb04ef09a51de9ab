"""The page in a real headless Chromium (issue 23's "done when"): paint, Complete, compare at 100 %
and at the face, candidate crops large enough to compare, the original held in place, keyboard
shortcuts, a phone-sized layout with touch painting, a mask file and a PNG's transparency as the
hole, a mask type's hole shown before Complete, out-of-range fields refused with their range, and
a 413 from /api/faces said as too large. Answers come as changed regions, assembled by the page.

Needs Debian's `chromium` (apt-get install chromium) and Playwright's Python package; Playwright's
own browser downloads are not used."""

from __future__ import annotations

import base64
import io
import json
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
from completion.complete import Completer, CompletionOptions  # noqa: E402
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
STEPS = "10"  # Adam steps per completion: this tests the page, not the search


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():  # noqa: ANN201
    """The real app with the shipped model, served by uvicorn in a thread on a free local port."""
    app = create_app(Completer(load_model(default_model_path()), CompletionOptions(iterations=10)))
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


@pytest.fixture
def page(browser, server: str):  # noqa: ANN001, ANN201
    """A fresh page at 1280x900 on the server; fails the test on any script error."""
    pg = browser.new_page(viewport={"width": 1280, "height": 900})
    pg.set_default_timeout(90_000)  # a busy CI machine may take a while; these are no timing tests
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(server + "/")
    pg.wait_for_function("document.querySelectorAll('#sample option').length > 1")
    yield pg
    pg.close()
    assert not errors


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)


def key(page, name: str) -> None:  # noqa: ANN001
    """Press a key with no field focused, as a user does after clicking on the page."""
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.keyboard.press(name)


def open_sample(page, name: str = "face_01.png") -> None:  # noqa: ANN001
    page.select_option("#sample", name)
    page.wait_for_selector(f"#stage[data-loaded='{name}']")
    page.wait_for_selector("#faces button")  # face finding answered


def open_file(page, path: Path) -> None:  # noqa: ANN001
    page.set_input_files("#file", str(path))
    page.wait_for_selector(f"#stage[data-loaded='{path.name}']")
    page.wait_for_selector("#faces button")


def settings(page, samples: int = 1) -> None:  # noqa: ANN001
    page.fill("#samples", str(samples))
    page.fill("#seed", "0")
    page.fill("#iterations", STEPS)


def image_point(page, x: float, y: float) -> tuple[float, float]:  # noqa: ANN001
    """The screen position of image pixel (x, y) in the editor under the current view."""
    return tuple(
        page.evaluate(
            """([x, y]) => { const p = placement(stage), r = stage.getBoundingClientRect();
                return [r.left + p.tx + x * p.s, r.top + p.ty + y * p.s]; }""",
            [x, y],
        )
    )


def paint(page, a: tuple[float, float], b: tuple[float, float], brush: int) -> float:  # noqa: ANN001
    """A mouse stroke from a to b (image coordinates) with a brush of `brush` screen px; returns
    the editor's scale (screen px per image px)."""
    page.eval_on_selector("#brush", f"e => {{ e.value = {brush}; e.dispatchEvent(new Event('input')); }}")
    page.mouse.move(*image_point(page, *a))
    page.mouse.down()
    for k in range(1, 11):
        page.mouse.move(*image_point(page, a[0] + (b[0] - a[0]) * k / 10, a[1] + (b[1] - a[1]) * k / 10))
    page.mouse.up()
    return float(page.get_attribute("#stage", "data-scale"))


def complete(page) -> dict:  # noqa: ANN001
    """Click Complete; the JSON answer, once the page shows it."""
    with page.expect_response("**/api/complete", timeout=300_000) as info:
        page.click("#complete")
    response = info.value
    assert response.status == 200, response.text()
    page.wait_for_selector("#candidates figure.on")
    return response.json()


def assemble(base: np.ndarray, cand: dict) -> np.ndarray:
    out = base.copy()
    for g in cand["regions"]:
        out[g["y"] : g["y"] + g["h"], g["x"] : g["x"] + g["w"]] = decode(base64.b64decode(g["png"]))
    return out


def download(page) -> np.ndarray:  # noqa: ANN001
    with page.expect_download() as info:
        page.click("#download")
    return decode(Path(info.value.path()).read_bytes()), info.value.suggested_filename


def near_segment(h: int, w: int, a: tuple[float, float], b: tuple[float, float], radius: float) -> np.ndarray:
    """HxW bool: pixel centres within `radius` of the segment a-b (image coordinates)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    ax, ay = a
    dx, dy = b[0] - ax, b[1] - ay
    t = np.clip(((xx - ax) * dx + (yy - ay) * dy) / (dx * dx + dy * dy), 0, 1)
    return np.hypot(xx - (ax + t * dx), yy - (ay + t * dy)) <= radius


def test_paint_complete_download(page) -> None:  # noqa: ANN001
    """Paint, Complete: a light answer (regions only), the download is the full picture, changed
    only under the stroke; candidates are chosen by click and by the arrow keys."""
    open_sample(page)
    settings(page, samples=3)
    a, b = (20.0, 30.0), (44.0, 30.0)  # across the eyes of the 64x64 face
    scale = paint(page, a, b, 40)
    body = complete(page)
    cands = body["candidates"]
    assert len(cands) == 3 and [c["loss"] for c in cands] == sorted(c["loss"] for c in cands)
    assert all("png" not in c and c["regions"] for c in cands)  # the page asked for changed regions

    before = decode(SAMPLE.read_bytes())
    after, name = download(page)
    assert name == f"face_01-completed-seed{cands[0]['seed']}.png"
    assert np.array_equal(after, assemble(before, cands[0]))
    changed = (after != before).any(axis=2)
    radius = 40 / scale / 2  # the brush, in image pixels
    assert changed.sum() > 0.5 * near_segment(64, 64, a, b, radius).sum()  # the hole was filled
    # Nothing changed away from the stroke (one pixel of slack for the brush's anti-aliased edge).
    assert not (changed & ~near_segment(64, 64, a, b, radius + 1.5)).any()

    page.click("#candidates figure:nth-child(2)")
    assert page.get_attribute("#resultview", "data-seed") == str(cands[1]["seed"])
    key(page, "ArrowRight")
    assert page.get_attribute("#resultview", "data-seed") == str(cands[2]["seed"])
    key(page, "ArrowLeft")
    key(page, "ArrowLeft")
    assert page.get_attribute("#resultview", "data-seed") == str(cands[0]["seed"])


def test_shortcuts_brush_undo_redo(page) -> None:  # noqa: ANN001
    open_sample(page)
    keys = page.inner_text("#keys")
    for listed in ("[ ]", "Ctrl+Z", "Ctrl+Shift+Z", "Ctrl+Enter", "← →", "hold O"):
        assert listed in keys
    page.eval_on_selector("#brush", "e => { e.value = 40; e.dispatchEvent(new Event('input')); }")
    key(page, "]")
    assert int(page.input_value("#brush")) > 40
    key(page, "[")
    key(page, "[")
    assert int(page.input_value("#brush")) < 40
    paint(page, (10, 10), (30, 10), 20)
    holes = """() => { const a = snapshot().data; let n = 0;
        for (let i = 3; i < a.length; i += 4) n += a[i] > 127; return n; }"""
    painted = page.evaluate(holes)
    assert painted > 0
    key(page, "Control+z")
    assert page.evaluate(holes) == 0
    key(page, "Control+Shift+Z")
    assert page.evaluate(holes) == painted
    key(page, "Control+z")
    page.click("#redo")
    assert page.evaluate(holes) == painted
    # C completes.
    settings(page)
    with page.expect_response("**/api/complete", timeout=60_000) as info:
        key(page, "c")
    assert info.value.status == 200


def astronaut(tmp_path: Path) -> Path:
    skimage = pytest.importorskip("skimage.data")
    path = tmp_path / "astronaut.png"
    path.write_bytes(png_bytes(skimage.astronaut()))
    return path


def test_compare_at_100_percent_and_at_the_face(page, tmp_path: Path) -> None:  # noqa: ANN001
    """A 512-px photo: candidate crops over 150 screen px, one zoom for the editor and the result
    (fit, 100 %, face), and the original held in place with O or the button."""
    open_file(page, astronaut(tmp_path))
    settings(page, samples=2)
    paint(page, (195, 102), (255, 102), 30)  # over her eyes, inside the face the detector finds
    body = complete(page)
    assert body["width"] == 512

    crop = page.locator("#candidates canvas").first.bounding_box()
    assert crop["width"] > 150 and crop["height"] > 150
    # The crop shows the completed region, not the whole photo shrunk.
    boxes = [g for g in body["candidates"][0]["regions"]]
    assert max(g["w"] for g in boxes) < 200

    fit = float(page.get_attribute("#stage", "data-scale"))
    assert fit < 1.2  # a 512-px photo fits a view of about 600 px
    page.click("#z100")
    assert page.get_attribute("#stage", "data-scale") == "1.000"
    assert page.get_attribute("#resultview", "data-scale") == "1.000"  # the result follows
    key(page, "f")
    face = float(page.get_attribute("#stage", "data-scale"))
    assert face > 1.5 * fit and page.get_attribute("#resultview", "data-scale") == f"{face:.3f}"
    # The view's centre lies in the crop the model completed.
    cx, cy = page.evaluate("() => [V.cx, V.cy]")
    xs = [p[0] for p in body["crops"][0]]
    ys = [p[1] for p in body["crops"][0]]
    assert min(xs) < cx < max(xs) and min(ys) < cy < max(ys)
    page.click("#zfit")
    assert float(page.get_attribute("#stage", "data-scale")) == pytest.approx(fit, abs=0.002)

    assert page.get_attribute("#resultview", "data-showing") == "completed"
    page.keyboard.down("o")
    page.wait_for_selector("#resultview[data-showing='original']")
    page.keyboard.up("o")
    page.wait_for_selector("#resultview[data-showing='completed']")
    page.hover("#original")
    page.mouse.down()
    page.wait_for_selector("#resultview[data-showing='original']")
    page.mouse.up()
    page.wait_for_selector("#resultview[data-showing='completed']")


def test_phone_layout_and_touch_painting(browser, server: str) -> None:  # noqa: ANN001
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    page = ctx.new_page()
    page.set_default_timeout(180_000)
    page.goto(server + "/")
    page.wait_for_function("document.querySelectorAll('#sample option').length > 1")
    open_sample(page)
    wide = "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    scroll, width = page.evaluate(wide)
    assert scroll <= width <= 390
    box = page.locator("#stage").bounding_box()
    assert box["width"] <= 390 and box["x"] >= 0
    # A finger stroke paints the hole.
    cdp = ctx.new_cdp_session(page)
    x0, y0 = image_point(page, 16, 30)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x0, "y": y0}]})
    for k in range(1, 9):
        cdp.send(
            "Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x0 + 20 * k, "y": y0}]}
        )
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    assert page.evaluate("() => S.painted")
    settings(page, samples=2)
    complete(page)
    scroll, width = page.evaluate(wide)
    assert scroll <= width  # the result and its candidates fit too
    assert page.locator("#resultview").bounding_box()["width"] <= 390
    ctx.close()


def test_mask_file_changes_only_its_hole(page, tmp_path: Path) -> None:  # noqa: ANN001
    """A mask file (white = hole, or black = hole with the switch) becomes the hole; the result
    differs from the photo only there."""
    open_sample(page)
    hole = np.zeros((64, 64), bool)
    hole[26:36, 18:46] = True
    white = tmp_path / "white.png"
    white.write_bytes(png_bytes(np.where(hole, 255, 0).astype(np.uint8)))
    black = tmp_path / "black.png"
    black.write_bytes(png_bytes(np.where(hole, 0, 255).astype(np.uint8)))
    box = "() => holeBox()"
    page.select_option("#maskconv", "black-hole")
    page.set_input_files("#maskfile", str(black))
    page.wait_for_selector("#stage[data-maskfile='black.png']")
    assert page.evaluate(box) == [18, 26, 46, 36]
    page.select_option("#maskconv", "white-hole")
    page.set_input_files("#maskfile", str(white))
    page.wait_for_selector("#stage[data-maskfile='white.png']")
    assert page.evaluate(box) == [18, 26, 46, 36]
    settings(page)
    body = complete(page)
    before = decode(SAMPLE.read_bytes())
    after, _ = download(page)
    changed = (after != before).any(axis=2)
    assert changed.sum() > 0.5 * hole.sum() and not (changed & ~hole).any()
    assert np.array_equal(after, assemble(before, body["candidates"][0]))


def test_transparency_is_the_hole_when_nothing_is_painted(page, tmp_path: Path) -> None:  # noqa: ANN001
    rgb = decode(SAMPLE.read_bytes()).astype(np.uint8)
    hole = np.zeros((64, 64), bool)
    hole[22:34, 16:48] = True
    path = tmp_path / "holed.png"
    path.write_bytes(png_bytes(np.dstack([rgb, np.where(hole, 0, 255).astype(np.uint8)])))
    open_file(page, path)
    assert "transparent" in page.inner_text("#status")
    settings(page)
    assert not page.evaluate("() => S.painted")  # no mask is sent: the API takes the alpha
    body = complete(page)
    after, _ = download(page)
    changed = (after != rgb).any(axis=2)
    assert changed.sum() > 0.5 * hole.sum() and not (changed & ~hole).any()
    for g in body["candidates"][0]["regions"]:  # only the hole came back
        assert hole[g["y"] : g["y"] + g["h"], g["x"] : g["x"] + g["w"]].any()


def test_mask_type_is_shown_before_complete(page) -> None:  # noqa: ANN001
    open_sample(page)
    page.select_option("#masktype", "eyes")
    page.wait_for_selector("#stage[data-preview='eyes']")
    x0, y0, x1, y1 = page.evaluate("() => holeBox()")
    assert 0 < (x1 - x0) * (y1 - y0) < 64 * 64 and y1 < 48  # a band over the eyes, not the image
    # What Complete replaces is what was shown.
    preview = (
        np.array(
            page.evaluate(
                """() => Array.from(S.preview.getContext('2d').getImageData(0, 0, S.w, S.h).data
                    .filter((_, i) => i % 4 === 3))"""
            )
        ).reshape(64, 64)
        > 127
    )
    settings(page)
    complete(page)
    after, _ = download(page)
    changed = (after != decode(SAMPLE.read_bytes())).any(axis=2)
    assert changed.any() and not (changed & ~preview).any()


@pytest.mark.parametrize(("field", "value", "words"), [
    ("#samples", "100", "candidates: 100 is not a whole number from 1 to 8"),
    ("#samples", "0", "candidates: 0 is not a whole number from 1 to 8"),
    ("#iterations", "5000", "steps: 5000 is not a whole number from 0 to 1000"),
    ("#seed", "-3", "seed: -3 is not a whole number from 0 to 4294967295"),
])  # fmt: skip
def test_out_of_range_fields_are_refused_with_their_range(page, field: str, value: str, words: str) -> None:  # noqa: ANN001
    open_sample(page)
    paint(page, (20, 30), (44, 30), 40)
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.url.endswith("/api/complete") else None)
    page.fill(field, value)
    page.click("#complete")
    assert page.inner_text("#status") == words
    assert page.get_attribute(field, "aria-invalid") == "true"
    assert page.input_value(field) == value  # not clamped
    assert not sent


def test_413_from_faces_is_said_as_too_large(page) -> None:  # noqa: ANN001
    limit = "request body is 31,457,280 bytes, above the limit of 20,971,520"
    page.route(
        "**/api/faces",
        lambda route: route.fulfill(
            status=413, content_type="application/json", body=json.dumps({"error": limit})
        ),
    )
    page.select_option("#sample", "face_01.png")
    page.wait_for_selector("#faceinfo.error")
    said = page.inner_text("#faceinfo")
    assert said.startswith("photo too large for this server") and limit in said
    assert "no face found" not in page.inner_text("#faces")
    page.unroute("**/api/faces")
    page.route(
        "**/api/faces",
        lambda route: route.fulfill(
            status=503,
            content_type="application/json",
            body='{"error": "the server is busy (8 requests queued); try again shortly"}',
        ),
    )
    page.select_option("#sample", "face_02.png")
    page.wait_for_function("document.querySelector('#faceinfo')?.textContent.startsWith('server busy')")


def test_errors_name_the_pages_controls(page, tmp_path: Path) -> None:  # noqa: ANN001
    """A hole away from every face: the server's line, in the page's words (no API field, no flag)."""
    open_file(page, astronaut(tmp_path))
    settings(page)
    paint(page, (440, 440), (480, 440), 20)  # on her suit, far from the face
    with page.expect_response("**/api/complete") as info:
        page.click("#complete")
    assert info.value.status == 400
    page.wait_for_selector("#status.error")
    said = page.inner_text("#status")
    assert said.startswith("error: photo: the hole lies outside every face found")
    assert "a face picked under Faces" in said
    for other in ("box", "--", "field", "image:"):
        assert other not in said
