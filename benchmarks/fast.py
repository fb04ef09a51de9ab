"""The fast path against the published recipe, on the same validation faces and model.

1. published: random z in [-1, 1], Adam lr 0.01 betas (0.9, 0.999), lambda 0.1 with the
   non-saturating perceptual loss, 1500 iterations, Yeh's window-7 weights, no blending, no
   restarts, fp32 (bamos/dcgan-completion.tensorflow); --published-iterations N runs N and
   scales its time to 1,500;
2. the project's defaults (CompletionOptions()).

Per mask type: PSNR (whole, hole), SSIM, seconds per image in a batch and for a single image, and
the speed ratio.

    python benchmarks/fast.py --n 64 [--mask-types ...] [--published-iterations 1500] [--methods ours]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from common import MASK_TYPES, SHARED, complete_in_batches, median_single_seconds

from completion.bundle import default_model_path, load_model
from completion.complete import Completer, CompletionOptions
from completion.data import select_files
from completion.evaluate import blank_holes, load_faces, score
from completion.masks import make_mask


def run(completer: Completer, faces: list[np.ndarray], knowns: list[np.ndarray], batch: int, singles: int):  # noqa: ANN201
    items = list(zip(blank_holes(faces, knowns), knowns, strict=True))
    t0 = time.perf_counter()
    outs = [c.image for c in complete_in_batches(completer, items, batch)]
    per_image = (time.perf_counter() - t0) / len(faces)
    single = median_single_seconds(completer, items[:singles])
    return (*score(faces, outs, knowns), per_image, single)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=default_model_path())
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--mask-types", default=MASK_TYPES)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--published-iterations", type=int, default=1500)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--singles", type=int, default=3, help="one-image calls timed (median)")
    ap.add_argument(
        "--methods", default="published,ours", help="published,ours; one alone prints no speed-up"
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model)
    size = model.config.image_size
    faces = load_faces(select_files(SHARED, 9000, args.n), size, model.config.crop)
    published = Completer(
        model,
        CompletionOptions(
            iterations=args.published_iterations, lr=0.01, beta1=0.9, beta2=0.999, lam=0.1,
            perceptual="nonsat", weighting="yeh", restarts=1, blend="none", init="random", precision="fp32",
        ),
    )  # fmt: skip
    ours = Completer(model)
    print(f"{len(faces)} validation faces; published: {published.options}\nours: {ours.options}")
    print("| mask | method | PSNR | PSNR hole | SSIM | s/img (batch) | s (single) | speed-up (batch) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    methods = {"published": published, "ours": ours}
    scale = (1500 + 1) / (args.published_iterations + 1)
    if scale != 1:
        print(f"published recipe run at {args.published_iterations} iterations; its time scaled x{scale:.2f}")
    chosen = [m for m in args.methods.split(",") if m in methods]
    for mt in args.mask_types.split(","):
        knowns = [make_mask(mt, size, size, seed=i) for i in range(len(faces))]
        rows = {name: run(methods[name], faces, knowns, args.batch_size, args.singles) for name in chosen}
        for name, r in rows.items():
            # A shortened recipe (--published-iterations) is scaled to its 1,500 steps (1,501 passes).
            if "published" not in rows:
                ratio = "-"
            else:
                ratio = f"{rows['published'][3] * (1 if name == 'published' else scale) / r[3]:.1f}x"
            cells = [mt, name, f"{r[0]:.2f}", f"{r[1]:.2f}", f"{r[2]:.4f}", f"{r[3]:.3f}", f"{r[4]:.2f}"]
            print("| " + " | ".join(cells) + f" | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
