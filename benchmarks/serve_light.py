"""Light answers (issue 23): 8 candidates of a 6000x4000 photo with an eyes hole, answered as full
PNGs (regions=full, the old format) and as the changed regions only (regions=changed, what the page
asks for); then the page in headless Chromium: the same request from the page, and the time from
the server's answer to the candidates shown.

    python benchmarks/serve_light.py [--threads 2] [--skip-full]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_common import big_photo, post, serving  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
FIELDS = {"mask_type": "eyes", "samples": 8, "format": "json"}


def api(url: str, photo: bytes, regions: str) -> str:
    t0 = time.perf_counter()
    status, _, body = post(url + "/api/complete", {"image": photo}, {**FIELDS, "regions": regions})
    seconds = time.perf_counter() - t0
    if status != 200:
        raise RuntimeError(f"HTTP {status}: {body[:200]!r}")
    cands = json.loads(body)["candidates"]
    parts = sum(len(c.get("regions", [c])) for c in cands)
    size = f"{len(body) / 1e6:.2f} MB"
    return f"regions={regions}: {size} for {len(cands)} candidates ({parts} PNGs), {seconds:.1f} s"


def page(url: str, photo: bytes) -> str:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        path = Path(tmp) / "photo6000.png"
        path.write_bytes(photo)
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 900})
        pg.set_default_timeout(600_000)
        pg.goto(url + "/")
        pg.set_input_files("#file", str(path))
        pg.wait_for_selector("#stage[data-loaded='photo6000.png']")
        pg.wait_for_selector("#faces button")
        pg.select_option("#masktype", "eyes")
        pg.wait_for_selector("#stage[data-preview='eyes']")
        pg.fill("#samples", "8")
        pg.click("#complete")
        pg.wait_for_selector("#candidates figure.on")
        t = pg.evaluate("() => S.timings")
        browser.close()
    return (
        f"page: answer {t['bytes'] / 1e6:.2f} MB; shown {t['ms'] / 1000:.2f} s after it arrived "
        "(8 candidate crops and the result view drawn)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-full", action="store_true", help="skip the full-PNG answer (slow, large)")
    args = ap.parse_args()
    photo = big_photo()
    mb = len(photo) // 2**20 + 2
    print(f"6000x4000 photo: {len(photo) / 1e6:.1f} MB PNG; mask_type=eyes, samples=8")
    with serving("--max-upload-mb", str(max(20, mb)), threads=args.threads) as (proc, url):
        if not args.skip_full:
            print(api(url, photo, "full"))
        print(api(url, photo, "changed"))
        print(page(url, photo))


if __name__ == "__main__":
    main()
