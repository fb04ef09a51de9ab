"""`completion serve` against clients that misbehave (issue 22), on a real server on 127.0.0.1.

    python benchmarks/serve_abuse.py [--threads 1] [--model MODEL]

Prints one markdown table:
- slow uploads: N clients send a request's headers and first boundary line, then nothing; a valid
  request's latency while they hang (and /api/health's queue);
- abandoned jobs: clients that give up 2 s into a 1000-step, 8-sample job (like `timeout 2 curl`);
  the time from their going until the queue is empty again;
- peak RSS (VmHWM, reset before each request through /proc/PID/clear_refs) for a 10000x10000 PNG
  bomb and a 6000x4000 photo (eyes, and a box's whole centre as the hole), against the idle server;
- 40 concurrent valid requests, each a different image: each answer is its own image (its known
  pixels those it sent, bit for bit) or a 503.
Every loop is bounded; each part runs in a fresh server process so that peaks do not mix."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_common import big_photo, decode, face64, photo512, png, post, rss_mib, serving  # noqa: E402


def health(url: str) -> dict:
    import json
    import urllib.request

    with urllib.request.urlopen(url + "/api/health", timeout=10) as r:
        return json.load(r)


def hang(url: str, n: int) -> list[socket.socket]:
    """n clients that send the headers of a 100,000-byte upload and one boundary line, then stop."""
    host, port = url.removeprefix("http://").split(":")
    socks = []
    for _ in range(n):
        s = socket.create_connection((host, int(port)))
        s.sendall(
            b"POST /api/complete HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=B\r\n"
            b"Content-Length: 100000\r\n\r\n--B\r\n"
        )
        socks.append(s)
    return socks


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux 4.0+)


def slow_uploads(args: argparse.Namespace, rows: list[str]) -> None:
    with serving(*args.extra, threads=args.threads) as (proc, url):
        face, hole = face64()
        post(url + "/api/complete", {"image": png(face), "mask": png(hole)}, {})  # warm up
        for n in (8, 15):
            socks = hang(url, n)
            time.sleep(0.5)
            h = health(url)
            t0 = time.perf_counter()
            status, _, _ = post(url + "/api/complete", {"image": png(face), "mask": png(hole)}, {})
            dt = time.perf_counter() - t0
            q, u = h["queue"], h["uploads"]
            rows.append(
                f"| slow uploads | {n} clients hang (queue {q['admitted']}/{q['capacity']}, "
                f"receiving {u['receiving']}/{u['capacity']}) | valid request: {status} in {dt:.2f} s |"
            )
            for s in socks:
                s.close()


def abandoned(args: argparse.Namespace, rows: list[str]) -> None:
    with serving(*args.extra, threads=args.threads) as (proc, url):
        image, _ = photo512()
        data = png(image)
        for _ in range(2):
            with contextlib.suppress(OSError):  # timed out: the client gives up, as `timeout 2 curl` does
                post(url + "/api/complete", {"image": data},
                     {"mask_type": "eyes", "iterations": 1000, "samples": 8}, timeout=2)  # fmt: skip
            gone = time.perf_counter()
            deadline = gone + 120
            while health(url)["queue"]["admitted"] and time.perf_counter() < deadline:
                time.sleep(0.02)
            rows.append(
                f"| abandoned job | a client gives up 2 s into 1000 steps x 8 samples | queue place "
                f"free {time.perf_counter() - gone:.2f} s after it left |"
            )


def bomb_png(side: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (200, 180, 160)).save(buf, format="PNG", compress_level=9)
    return buf.getvalue()


def memory(args: argparse.Namespace, rows: list[str]) -> None:
    bomb, photo = bomb_png(10000), big_photo()
    cases = [
        ("10000x10000 PNG bomb", bomb, {"mask_type": "center"}, ()),
        ("10000x10000 PNG bomb, box 4000,4000,2000,2000", bomb,
         {"mask_type": "center", "box": "4000,4000,2000,2000"}, ()),
        ("6000x4000 photo, eyes", photo, {"mask_type": "eyes"}, ()),
        ("6000x4000 photo, eyes, 8 samples", photo, {"mask_type": "eyes", "samples": 8}, ()),
        # The largest holes: a box's whole centre (2.2 and 9.3 megapixels), and one all rim.
        ("6000x4000 photo, box 2000,1000,2000,2000, center", photo,
         {"mask_type": "center", "box": "2000,1000,2000,2000"}, ()),
        ("6000x4000 photo, box 1000,0,4000,4000, center", photo,
         {"mask_type": "center", "box": "1000,0,4000,4000"}, ()),
        ("6000x4000 photo, box 1000,0,4000,4000, random:0.8", photo,
         {"mask_type": "random:0.8", "box": "1000,0,4000,4000"}, ()),
    ]  # fmt: skip
    if args.bomb_limit:
        cases += [
            (f"{name} (--max-pixels 100000000)", data, fields, ("--max-pixels", "100000000"))
            for name, data, fields, _ in cases[:2]
        ]
    if args.cases:
        cases = [cases[int(i) - 1] for i in args.cases.split(",")]
    for name, data, fields, extra in cases:
        with serving(*args.extra, *extra, threads=args.threads) as (proc, url):
            face, hole = face64()
            post(url + "/api/complete", {"image": png(face), "mask": png(hole)}, {})  # warm up
            idle, _ = rss_mib(proc.pid)
            reset_peak(proc.pid)
            t0 = time.perf_counter()
            status, _, body = post(url + "/api/complete", {"image": data}, {**fields, "format": "json"})
            dt = time.perf_counter() - t0
            after, peak = rss_mib(proc.pid)
            what = f"{status}" + ("" if status == 200 else f" ({body[:90].decode(errors='replace')})")
            rows.append(
                f"| peak RSS | {name} ({len(data) / 1e6:.1f} MB file) | {what} in {dt:.1f} s; "
                f"idle {idle:.0f} MiB, peak {peak:.0f} MiB (+{peak - idle:.0f}), after {after:.0f} MiB |"
            )


def concurrent(args: argparse.Namespace, rows: list[str]) -> None:
    with serving(*args.extra, threads=args.threads) as (proc, url):
        base, hole = face64()
        known = hole == 0
        rng = np.random.default_rng(0)
        images = []
        for _ in range(40):
            im = base.copy()
            im[known] = rng.integers(0, 256, (int(known.sum()), 3), dtype=np.uint8)  # each its own
            images.append(im)

        def one(i: int) -> str:
            status, _, body = post(url + "/api/complete", {"image": png(images[i]), "mask": png(hole)}, {})
            if status == 503:
                return "503"
            if status != 200:
                return f"other {status}"
            return "own" if np.array_equal(decode(body)[known], images[i][known]) else "WRONG IMAGE"

        t0 = time.perf_counter()
        with ThreadPoolExecutor(40) as pool:
            answers = list(pool.map(one, range(40)))
        dt = time.perf_counter() - t0
        counts = {k: answers.count(k) for k in sorted(set(answers))}
        rows.append(
            f"| 40 concurrent | each a different image | {', '.join(f'{v} {k}' for k, v in counts.items())} "
            f"in {dt:.1f} s |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--model", default=None)
    ap.add_argument("--bomb-limit", action="store_true", help="also the bomb with --max-pixels 100000000")
    ap.add_argument("--parts", default="slow,abandoned,memory,concurrent")
    ap.add_argument("--cases", default=None, help="memory cases to run, by number from 1 (e.g. 5,6)")
    args = ap.parse_args()
    args.extra = ("--model", args.model) if args.model else ()
    rows = ["| case | clients | result |", "|---|---|---|"]
    parts = {"slow": slow_uploads, "abandoned": abandoned, "memory": memory, "concurrent": concurrent}
    for name in args.parts.split(","):
        parts[name](args, rows)
        print(rows[-1], file=sys.stderr, flush=True)
    print(f"load average before/after: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
