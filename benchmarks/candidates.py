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

import itertools
import time
from dataclasses import replace

import numpy as np
from common import complete_in_batches, face_parser, validation_faces
from common import start as start_benchmark

from completion.complete import Completer, CompletionOptions
from completion.evaluate import blank_holes
from completion.masks import make_mask
from completion.metrics import psnr


def main() -> None:
    ap = face_parser(__doc__, 32, "center,eyes,left", 16, "faces per batch (times --samples rows)")
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--spreads", default="0.25,0.5,1.0,random")
    args, model = start_benchmark(ap)
    size = model.config.image_size
    faces = validation_faces(args, model)
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
            done = complete_in_batches(c, items, args.batch_size)
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
