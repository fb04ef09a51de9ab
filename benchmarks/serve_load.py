"""Load on `completion serve`: concurrent requests, then memory over many requests.

1. --concurrent requests at once (distinct images: each is a sample face with its own noise pattern
   outside the hole). Every request must be answered with 200 or 503, and each 200 must carry that
   request's own image: its known pixels equal the ones it sent, bit for bit.
2. --requests more, a few at a time, alternating 64x64 faces and the 512x512 photo and 1-4
   candidates, while the server's resident memory (VmRSS, and the peak VmHWM) is sampled.

    python benchmarks/serve_load.py --concurrent 32 --requests 200 --threads 2
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from serve_common import decode, face64, photo512, png, post, rss_mib, serving


def distinct_face(i: int) -> tuple[np.ndarray, np.ndarray]:
    """Request i's image: the sample face with noise of seed i outside the hole."""
    image, hole = face64()
    rng = np.random.default_rng(i)
    noisy = np.clip(image.astype(int) + rng.integers(-12, 13, image.shape), 0, 255).astype(np.uint8)
    return noisy, hole


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrent", type=int, default=32)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--parallel", type=int, default=4, help="requests in flight during the memory run")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    with serving(threads=args.threads) as (proc, url):
        # 1. concurrency: answered, and each with its own image.
        def one(i: int) -> tuple[int, str]:
            image, hole = distinct_face(i)
            status, _, body = post(url + "/api/complete", {"image": png(image), "mask": png(hole)}, {})
            if status == 200:
                known = hole == 0
                out = decode(body)
                if not np.array_equal(out[known], image[known]):
                    return status, "WRONG IMAGE"
                return status, "own image"
            return status, json.loads(body).get("error", "")[:60]

        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.concurrent) as pool:
            results = list(pool.map(one, range(args.concurrent)))
        wall = time.perf_counter() - t0
        counts = collections.Counter(f"{s} {what}" for s, what in results)
        print(f"{args.concurrent} concurrent requests in {wall:.1f} s: {dict(counts)}")
        assert len(results) == args.concurrent and all(s in (200, 503) for s, _ in results)
        assert not any(what == "WRONG IMAGE" for _, what in results)

        # 2. memory over many requests.
        face, face_hole = face64()
        photo, photo_hole = photo512()
        jobs = []
        for i in range(args.requests):
            image, hole = (face, face_hole) if i % 2 == 0 else (photo, photo_hole)
            jobs.append(({"image": png(image), "mask": png(hole)}, {"samples": 1 + i % 4, "format": "json"}))

        def send(job: tuple[dict, dict]) -> int:
            status, _, body = post(url + "/api/complete", *job)
            if status == 200:
                decode(base64.b64decode(json.loads(body)["candidates"][0]["png"]))
            return status

        print("| requests done | RSS MiB | peak RSS MiB |")
        print("|---:|---:|---:|")
        rss, peak = rss_mib(proc.pid)
        print(f"| 0 | {rss:.0f} | {peak:.0f} |", flush=True)
        statuses: collections.Counter = collections.Counter()
        step = max(1, args.requests // 8)
        with ThreadPoolExecutor(args.parallel) as pool:
            for start in range(0, args.requests, step):
                statuses.update(pool.map(send, jobs[start : start + step]))
                rss, peak = rss_mib(proc.pid)
                print(f"| {min(start + step, args.requests)} | {rss:.0f} | {peak:.0f} |", flush=True)
        print(f"statuses: {dict(statuses)}")


if __name__ == "__main__":
    main()
