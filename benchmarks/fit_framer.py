"""Train the framer (completion/framer.py) on the aligned CelebA training faces.

On an aligned face the model's crop is known exactly: the centred square of side 0.72 x width. Each
training example is a TRAINING face (000001-009000) seen through that crop perturbed at random
(log side ~ N(0, 0.08), centre ~ N(0, 0.03) of the side, angle ~ N(0, 4 deg), clipped near 2.5
sigma: wider than what YuNet's landmarks leave), the target the correction back onto the true crop.
Augmentations stand in for photos that are not CelebA: mirror images, blur, low resolution,
brightness, contrast, colour cast, grey and noise. The validation faces (009001-009500) are only
scored, never trained on: the same kind of perturbation, fixed seed, after one and two passes.

    python benchmarks/fit_framer.py [--steps 3000] [--out completion/weights/framer.pt]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED  # noqa: E402

from completion.framer import (  # noqa: E402
    DEFAULT_FILE,
    Framer,
    FramerConfig,
    refine,
    save_framer,
    target,
    to_input,
    view_of,
)
from completion.imageio import load_rgb  # noqa: E402
from completion.photo import Framing, center_crop_box, crop_to_model  # noqa: E402

FRAC = 0.72  # the canonical crop of the shipped models: center:0.72
LOG_SIDE, SHIFT, ANGLE = 0.08, 0.03, 4.0  # perturbation spreads


def true_framing(width: int, height: int, flipped: bool = False) -> Framing:
    x0, y0, side = center_crop_box(width, height, FRAC)
    cx = x0 + side / 2
    # The crop is centred on whole pixels, so a mirrored image's crop centre is width - cx.
    return Framing(width - cx if flipped else cx, y0 + side / 2, float(side), float(side), 0.0, side)


def perturb(truth: Framing, rng: np.random.Generator, width: int, height: int, cfg: FramerConfig) -> Framing:
    """A random crop around the truth whose view lies inside the image (resampled until it does)."""
    while True:
        u = float(np.clip(rng.normal(0, LOG_SIDE), -2.5 * LOG_SIDE, 2.5 * LOG_SIDE))
        a = float(np.clip(rng.normal(0, ANGLE), -2.5 * ANGLE, 2.5 * ANGLE))
        sx, sy = np.clip(rng.normal(0, SHIFT, 2), -2.5 * SHIFT, 2.5 * SHIFT)
        side = truth.width * math.exp(u)
        t = math.radians(a)
        dx, dy = sx * side, sy * side
        f = Framing(
            truth.cx + dx * math.cos(t) - dy * math.sin(t),
            truth.cy + dx * math.sin(t) + dy * math.cos(t),
            side,
            side,
            a,
            truth.size,
        )
        c = view_of(f, cfg).corners()
        if (
            c[:, 0].min() >= 1
            and c[:, 1].min() >= 1
            and c[:, 0].max() <= width - 1
            and c[:, 1].max() <= height - 1
        ):
            return f


def degrade(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur or low resolution, as photos that are not CelebA's may have."""
    r = rng.random()
    if r < 0.35:
        return cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.5))
    if r < 0.55:
        h, w = img.shape[:2]
        k = rng.uniform(0.35, 0.8)
        small = cv2.resize(img, (max(8, round(w * k)), max(8, round(h * k))), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return img


def batch(
    faces: np.ndarray, rng: np.random.Generator, n: int, cfg: FramerConfig, augment: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    h, w = faces.shape[1:3]
    views, targets = [], []
    for i in rng.integers(0, len(faces), n):
        img = faces[i]
        flipped = augment and rng.random() < 0.5
        if flipped:
            img = np.ascontiguousarray(img[:, ::-1])
        if augment:
            img = degrade(img, rng)
        truth = true_framing(w, h, flipped)
        f = perturb(truth, rng, w, h, cfg)
        views.append(crop_to_model(img, view_of(f, cfg)))
        targets.append(target(f, truth, cfg))
    x = to_input(views)
    if augment:
        b = x.shape[0]
        x = x * torch.empty(b, 1, 1, 1).uniform_(0.6, 1.4) + torch.empty(b, 1, 1, 1).uniform_(-0.3, 0.3)
        x = x + torch.empty(b, 3, 1, 1).uniform_(-0.1, 0.1)  # colour cast
        grey = torch.rand(b) < 0.15
        x[grey] = x[grey].mean(1, keepdim=True).expand(-1, 3, -1, -1)
        x = x + torch.randn_like(x) * torch.empty(b, 1, 1, 1).uniform_(0, 0.06)
    return x, torch.from_numpy(np.stack(targets))


def score(net: Framer, faces: np.ndarray, seed: int = 1) -> dict[str, float]:
    """Mean errors of perturbed crops of the validation faces, before and after 1 and 2 passes."""
    rng = np.random.default_rng(seed)
    h, w = faces.shape[1:3]
    truth = true_framing(w, h)
    starts = [perturb(truth, rng, w, h, net.config) for _ in faces]
    out: dict[str, float] = {}
    for steps in (0, 1, 2):
        got = [refine(img, [f], net, steps)[0] if steps else f for img, f in zip(faces, starts, strict=True)]
        side = np.mean([abs(g.width / truth.width - 1) for g in got]) * 100
        centre = np.mean([math.hypot(g.cx - truth.cx, g.cy - truth.cy) / truth.width for g in got]) * 100
        angle = np.mean([abs(g.angle) for g in got])
        out.update({f"side_pct_{steps}": side, f"centre_pct_{steps}": centre, f"angle_deg_{steps}": angle})
    return {k: round(float(v), 2) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=DEFAULT_FILE)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    if not SHARED.is_dir():
        raise SystemExit(f"{SHARED}: the shared CelebA subset is not present")
    files = sorted(SHARED.glob("*.jpg"))
    train = np.stack([load_rgb(p) for p in files if int(p.stem) <= 9000])
    val = np.stack([load_rgb(p) for p in files if 9001 <= int(p.stem) <= 9500])
    cfg = FramerConfig()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    net = Framer(cfg)
    opt = torch.optim.AdamW(net.parameters(), args.lr, weight_decay=1e-4)
    t0 = time.time()
    for step in range(1, args.steps + 1):
        for g in opt.param_groups:
            g["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * (step - 1) / args.steps))
        x, y = batch(train, rng, args.batch_size, cfg)
        net.train()
        loss = torch.nn.functional.smooth_l1_loss(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 250 == 0 or step == args.steps:
            print(
                json.dumps({"step": step, "loss": round(loss.item(), 4), "s": round(time.time() - t0)}),
                flush=True,
            )
    net.eval()
    seconds = round(time.time() - t0)
    val_scores = score(net, val)
    meta = {
        "trained_on": "aligned CelebA 000001-009000, crop center:0.72",
        "steps": args.steps,
        "batch_size": args.batch_size,
        "seconds": seconds,
        "validation": val_scores,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_framer(net, args.out, meta)
    print(json.dumps({"out": str(args.out), **meta}, indent=1))


if __name__ == "__main__":
    main()
