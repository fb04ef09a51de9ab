"""Completion quality and speed on validation faces (009001-) for the project's defaults, next to
OpenCV's Telea and Navier-Stokes inpainting on the same images and masks.

    python benchmarks/complete.py [--model completion/weights/celeba64.pt] [--n 64] [--out bench_out/]

Prints a Markdown table: per mask type and method, PSNR (whole image and hole), SSIM and seconds
per image (ours: optimised in batches of --batch-size)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from common import MASK_TYPES, SHARED

from completion.bundle import default_model_path, load_model
from completion.complete import Completer, CompletionOptions
from completion.data import select_files
from completion.evaluate import evaluate, load_faces


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=default_model_path())
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--mask-types", default=MASK_TYPES)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=None, help="override the default")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="also write results.md/json and grids here")
    args = ap.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"{SHARED} not found: this benchmark needs the shared CelebA validation faces")
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model)
    opts = CompletionOptions() if args.iterations is None else CompletionOptions(iterations=args.iterations)
    completer = Completer(model, opts)
    faces = load_faces(select_files(SHARED, 9000, args.n), model.config.image_size, model.config.crop)
    print(f"{len(faces)} validation faces (009001-), model {args.model}, options {completer.options}")
    report = evaluate(completer, faces, args.mask_types.split(","), args.batch_size, True, args.out)
    print(report.markdown())


if __name__ == "__main__":
    main()
