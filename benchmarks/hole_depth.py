"""Search steps against hole depth: hole PSNR and SSIM after 0, 25 and 50 steps from the encoder's
z, for holes of several depths (masks.hole_depth), on validation faces. It chose --skip-depth.

Holes: NAME:F with NAME box (a centred square of side F), low (a bottom strip F of the height),
corner (a bottom-left square of side F), or any mask type.

    python benchmarks/hole_depth.py --n 64 --offset 9000 --holes box:0.9,corner:0.6,low:0.4,left,right,top
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from common import face_parser, start, validation_faces

from completion.complete import Completer, CompletionOptions
from completion.evaluate import blank_holes, score
from completion.masks import hole_depth, make_mask


def hole(spec: str, size: int, seed: int) -> np.ndarray:
    """A known mask (True = known) for one hole spec."""
    kind, _, value = spec.partition(":")
    known = np.ones((size, size), bool)
    frac = float(value or 0)
    side = round(frac * size)
    if kind == "box":
        box = int(frac * size)  # floor, and its corner at floor(centre - box / 2): the measured boxes
        a = int(size / 2 - box / 2)
        known[a : a + box, a : a + box] = False
    elif kind == "low":
        known[size - side :] = False
    elif kind == "corner":
        known[size - side :, :side] = False
    else:
        return make_mask(spec, size, size, seed=seed)
    return known


def main() -> None:
    ap = face_parser(__doc__, 64, "")
    ap.add_argument("--holes", default="box:0.9,corner:0.6,low:0.4,left,right,top,center,eyes")
    ap.add_argument("--steps", default="0,25,50")
    ap.add_argument("--lr", type=float, default=CompletionOptions().lr, help="Adam's lr on z")
    args, model = start(ap)
    size = model.config.image_size
    faces = validation_faces(args, model)
    counts = [int(s) for s in args.steps.split(",")]
    # skip_depth 1: every hole is searched for the given number of steps.
    base = replace(CompletionOptions(), skip_depth=1.0, lr=args.lr)
    print(f"{len(faces)} validation faces from #{args.offset + 1}; hole PSNR / SSIM after N steps")
    print("| hole | depth | " + " | ".join(f"{c} steps" for c in counts) + " |")
    print("|---|---:|" + "---|" * len(counts))
    for spec in args.holes.split(","):
        knowns = [hole(spec, size, i) for i in range(len(faces))]
        depth = np.mean([hole_depth(k) for k in knowns])
        cells = []
        for c in counts:
            completer = Completer(model, replace(base, iterations=c))
            inputs = blank_holes(faces, knowns)
            outs = [r.image for r in completer.complete_many(list(zip(inputs, knowns, strict=True)))]
            _, hole_psnr, ssim = score(faces, outs, knowns)
            cells.append(f"{hole_psnr:.2f} / {ssim:.3f}")
        print(f"| {spec} | {depth:.3f} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
