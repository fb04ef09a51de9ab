"""Latency of `completion serve` with the model warm: one 64x64 face, one 512x512 photo.

Starts `completion serve` in a subprocess, warms it with two requests of each kind, then times
--n sequential requests of each, alternating (wall time of the whole HTTP request: upload,
decoding, face finding, the search at the default steps, blending, PNG encoding, download) and
prints the median and the worst, and the median CPU time the server spent per request.

    python benchmarks/serve_latency.py --n 10 --threads 2 [--model celeba128]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from serve_common import cpu_seconds, decode, face64, photo512, png, post, serving


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, default=1)
    ap.add_argument(
        "--model", default=None, help="A model bundle or shipped name (default: the default model)."
    )
    args = ap.parse_args()
    with serving(*(["--model", args.model] if args.model else []), threads=args.threads) as (proc, url):
        kinds = {"64x64 face": face64(), "512x512 photo": photo512()}
        fields = {"samples": args.samples, "format": "json" if args.samples > 1 else "png"}
        files = {k: {"image": png(im), "mask": png(hole)} for k, (im, hole) in kinds.items()}
        times: dict[str, list[float]] = {k: [] for k in kinds}
        cpu: dict[str, list[float]] = {k: [] for k in kinds}
        for i in range(args.n + 2):  # the kinds alternate, so both see the same background load
            for k, (image, hole) in kinds.items():
                t0, c0 = time.perf_counter(), cpu_seconds(proc.pid)
                status, _, body = post(url + "/api/complete", files[k], fields)
                if i >= 2:  # the first two of each kind warm the server up
                    times[k].append(time.perf_counter() - t0)
                    cpu[k].append(cpu_seconds(proc.pid) - c0)
                assert status == 200, body[:200]
                if args.samples == 1:  # known pixels untouched
                    assert np.array_equal(decode(body)[hole == 0], image[hole == 0])
        # CPU seconds of the server per request: what the answer costs, whatever else runs.
        print("| request | median s | worst s | server CPU s, median | n |")
        print("|---|---:|---:|---:|---:|")
        for k, ts in times.items():
            med, worst, c = statistics.median(ts), max(ts), statistics.median(cpu[k])
            print(f"| {k} | {med:.3f} | {worst:.3f} | {c:.3f} | {len(ts)} |")


if __name__ == "__main__":
    main()
