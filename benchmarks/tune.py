"""Measure the completion choices the papers leave open, on the validation split (009001-).

One optimisation run per setting records G(z) at several iteration counts; every blend variant is
scored from the same run, so the table covers iterations x blending for the cost of one run.

    python benchmarks/tune.py --model completion/weights/celeba64.pt --n 32 --settings base,lam0,nonsat,plain
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from completion.blend import poisson_blend, seamless_clone
from completion.bundle import load_model
from completion.complete import Completer, CompletionOptions
from completion.data import select_files
from completion.evaluate import blank_holes, load_faces, score
from completion.grid import to_uint8
from completion.masks import make_mask

SHARED = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "celeba_subset" / "img_align_celeba"
)
SETTINGS = {
    "base": {},
    "lam0": {"lam": 0.0},
    "lam0.01": {"lam": 0.01},
    "lam1": {"lam": 1.0},
    "lam10": {"lam": 10.0},
    "lam10_nonsat": {"lam": 10.0, "perceptual": "nonsat"},
    "nonsat": {"perceptual": "nonsat"},
    "plain": {"weighting": "plain"},
    "restarts4": {"restarts": 4},
    "encoder": {"init": "encoder"},
    "encoder_lr003": {"init": "encoder", "lr": 0.003},
    "encoder_lam0": {"init": "encoder", "lam": 0.0},
    "encoder_nonsat": {"init": "encoder", "perceptual": "nonsat"},
    "encoder_lam10": {"init": "encoder", "lam": 10.0},
    "encoder_lam10_nonsat": {"init": "encoder", "lam": 10.0, "perceptual": "nonsat"},
    "encoder_plain": {"init": "encoder", "weighting": "plain"},
    "encoder_r4": {"init": "encoder", "restarts": 4},
    "random_r4": {"init": "random", "restarts": 4},
    "encoder_bf16": {"init": "encoder", "precision": "bf16"},
    "encoder_lr003_bf16": {"init": "encoder", "lr": 0.003, "precision": "bf16"},
}


def blended(faces, knowns, gens, blend):  # noqa: ANN001, ANN201
    """Completed images from raw G(z) outputs with one blend variant."""
    outs = []
    for f_in, k, g in zip(blank_holes(faces, knowns), knowns, gens, strict=True):
        g = g.astype(np.float64)
        hole = ~k
        if blend == "poisson":
            filled = poisson_blend(f_in.astype(np.float64), g, hole)
        elif blend == "opencv":
            filled = seamless_clone(f_in, g, hole)
        else:
            filled = g
        out = f_in.copy()
        out[hole] = np.clip(np.rint(filled[hole]), 0, 255).astype(np.uint8)
        outs.append(out)
    return outs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="completion/weights/celeba64.pt")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--offset", type=int, default=9000, help="first validation image (0-based)")
    ap.add_argument("--mask-types", default="center,left,random:0.8,pattern,eyes,mouth")
    ap.add_argument("--settings", default="base")
    ap.add_argument("--iterations", default="0,50,100,200,400,800,1500")
    ap.add_argument("--blends", default="none,poisson,opencv")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(Path(args.model))
    size = model.config.image_size
    faces = load_faces(select_files(SHARED, args.offset, args.n), size, model.config.crop)
    types = args.mask_types.split(",")
    checkpoints = [int(i) for i in args.iterations.split(",")]
    rows = []
    for name in args.settings.split(","):
        opts = CompletionOptions(iterations=max(checkpoints), **SETTINGS[name])
        completer = Completer(model, opts)
        for mt in types:
            knowns = [make_mask(mt, size, size, seed=i) for i in range(len(faces))]
            y = torch.stack([torch.from_numpy(f).permute(2, 0, 1).float() / 127.5 - 1 for f in faces])
            m = torch.stack([torch.from_numpy(k.astype(np.float32))[None] for k in knowns])
            snaps: dict[int, np.ndarray] = {}
            r = opts.restarts

            def keep(it: int, g: torch.Tensor, snaps=snaps, r=r) -> None:  # noqa: ANN001
                if it in checkpoints and r == 1:
                    snaps[it] = to_uint8(g)

            t0 = time.perf_counter()
            res = completer.optimise(y * m, m, keep, every=1)
            secs = (time.perf_counter() - t0) / len(faces)
            snaps[max(checkpoints)] = to_uint8(res.generated)  # best-z result at the end
            for it in sorted(snaps):
                for blend in args.blends.split(","):
                    p, ph, s = score(faces, blended(faces, knowns, snaps[it], blend), knowns)
                    row = dict(
                        setting=name,
                        mask=mt,
                        iterations=it,
                        blend=blend,
                        psnr=p,
                        psnr_hole=ph,
                        ssim=s,
                        seconds_total=secs,
                    )
                    rows.append(row)
                    print(
                        f"{name:10s} {mt:11s} it={it:5d} {blend:8s} PSNR {p:6.2f} hole {ph:6.2f} "
                        f"SSIM {s:.4f}  ({secs:.2f} s/img for {max(checkpoints)} it)",
                        flush=True,
                    )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
