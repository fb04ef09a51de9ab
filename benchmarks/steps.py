"""How many steps does the z search need? Iteration counts and early-stop tolerances compared.

A variant is ITERATIONS/TOLERANCE[/LAMBDA[/LR[/BETA1[/BETA2]]]] (tolerance 0: no early stop; λ,
the weight of the discriminator's perceptual term, LR, Adam's learning rate on z, and Adam's betas
default to CompletionOptions').
Each variant completes the same validation faces with every mask type in batches; quality (PSNR,
hole PSNR, SSIM) and the mean number of Adam steps come from that run. The time of a single image
is the median of --singles one-image calls (where an early stop saves time: a batch runs until its
slowest image stops).

    python benchmarks/steps.py --n 64 --variants 100/0,50/0,100/0.001,100/0.003 [--patience 10]
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from common import (
    MASK_TYPES,
    complete_in_batches,
    face_parser,
    median_single_seconds,
    start,
    validation_faces,
)

from completion.complete import Completer, CompletionOptions
from completion.evaluate import blank_holes, score
from completion.masks import make_mask


def main() -> None:
    ap = face_parser(__doc__, 64, MASK_TYPES)
    ap.add_argument(
        "--variants",
        default="100/0,50/0,25/0,100/0.001,100/0.003",
        help="ITERATIONS/TOL[/LAM[/LR[/BETA1[/BETA2]]]],...",
    )
    ap.add_argument("--patience", type=int, default=10)
    ap.add_argument("--singles", type=int, default=8)
    args, model = start(ap)
    size = model.config.image_size
    faces = validation_faces(args, model)
    base = replace(CompletionOptions(), patience=args.patience)
    print(f"{len(faces)} validation faces from #{args.offset + 1}; {base}")
    head = ["mask", "iterations", "early stop", "λ", "lr", "betas", "PSNR", "PSNR hole", "SSIM", "mean steps"]
    print("| " + " | ".join(head) + " | s (single) |")
    print("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    for mt in args.mask_types.split(","):
        knowns = [make_mask(mt, size, size, seed=i) for i in range(len(faces))]
        inputs = blank_holes(faces, knowns)
        items = list(zip(inputs, knowns, strict=True))
        for variant in args.variants.split(","):
            parts = variant.split("/")
            iterations, tol = int(parts[0]), float(parts[1])
            lam = float(parts[2]) if len(parts) > 2 else base.lam
            lr = float(parts[3]) if len(parts) > 3 else base.lr
            beta1 = float(parts[4]) if len(parts) > 4 else base.beta1
            beta2 = float(parts[5]) if len(parts) > 5 else base.beta2
            opts = replace(
                base, iterations=iterations, early_stop=tol, lam=lam, lr=lr, beta1=beta1, beta2=beta2
            )
            c = Completer(model, opts)
            done = complete_in_batches(c, items, args.batch_size)
            single = median_single_seconds(c, items[: args.singles])
            psnr, psnr_hole, ssim = score(faces, [d.image for d in done], knowns)
            steps = np.mean([d.steps for d in done])
            cells = [
                mt,
                str(iterations),
                f"{tol:g}",
                f"{lam:g}",
                f"{lr:g}",
                f"{beta1:g}, {beta2:g}",
                f"{psnr:.2f}",
                f"{psnr_hole:.2f}",
                f"{ssim:.4f}",
                f"{steps:.0f}",
            ]
            print("| " + " | ".join(cells) + f" | {single:.3f} |", flush=True)


if __name__ == "__main__":
    main()
