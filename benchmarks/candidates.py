"""How different, and how good, are the candidates of `--samples K`?

Completes validation faces K times each (seeds 0..K-1) for each setting: the encoder's z moved by
Gaussian noise of standard deviation SPREAD (seed 0 keeps the encoder's own z), or random z.
Reports, per mask type and setting:

- diversity: mean absolute difference (0-255) in the hole between two candidates of one face,
  over all pairs;
- hole PSNR of the lowest-loss candidate (the one shown first), of the highest-loss one, of seed 0
  (the single default completion), and of the best of the K by PSNR (what a user choosing by eye
  could at most get).

    python benchmarks/candidates.py --n 32 --samples 4 --spreads 0.25,0.5,1.0,random --threads 2
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from common import SHARED

from completion.bundle import default_model_path, load_model
from completion.complete import Completer, CompletionOptions
from completion.data import select_files
from completion.evaluate import blank_holes, load_faces
from completion.masks import make_mask
from completion.metrics import psnr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=default_model_path())
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--offset", type=int, default=9000, help="first validation image (0-based)")
    ap.add_argument("--mask-types", default="center,eyes,left")
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--spreads", default="0.25,0.5,1.0,random")
    ap.add_argument("--batch-size", type=int, default=16, help="faces per batch (times --samples rows)")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model)
    size = model.config.image_size
    faces = load_faces(select_files(SHARED, args.offset, args.n), size, model.config.crop)
    k = args.samples
    print(f"{len(faces)} validation faces from #{args.offset + 1}, {k} candidates each")
    print(
        "| mask | start | diversity (mean abs, hole) | PSNR hole: lowest loss | highest loss "
        "| seed 0 | best of K | s / face |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for mt in args.mask_types.split(","):
        knowns = [make_mask(mt, size, size, seed=i) for i in range(len(faces))]
        items = list(zip(blank_holes(faces, knowns), knowns, strict=True))
        for spread in args.spreads.split(","):
            if spread == "random":
                opts = replace(CompletionOptions(), samples=k, init="random")
            else:
                opts = replace(CompletionOptions(), samples=k, spread=float(spread))
            c = Completer(model, opts)
            t0 = time.perf_counter()
            done = []
            for s in range(0, len(items), args.batch_size):
                done += c.complete_many(items[s : s + args.batch_size])
            seconds = (time.perf_counter() - t0) / len(items)
            div, lo, hi, zero, oracle = [], [], [], [], []
            for face, known, res in zip(faces, knowns, done, strict=True):
                hole = ~known
                cands = res.candidates
                for a, b in itertools.combinations(cands, 2):
                    div.append(np.abs(a.image[hole].astype(float) - b.image[hole]).mean())
                scores = [psnr(face, x.image, hole) for x in cands]
                lo.append(scores[0])
                hi.append(scores[-1])
                zero.append(next(sc for sc, x in zip(scores, cands, strict=True) if x.seed == 0))
                oracle.append(max(scores))
            start = "random z" if spread == "random" else f"encoder + N(0, {spread})"
            print(
                f"| {mt} | {start} | {np.mean(div):.1f} | {np.mean(lo):.2f} | {np.mean(hi):.2f} "
                f"| {np.mean(zero):.2f} | {np.mean(oracle):.2f} | {seconds:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
