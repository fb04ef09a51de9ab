"""Check the framer on the aligned validation faces, and that it reads the face, not the file.

Each validation face (009001-009500, never trained on) is framed as a photo would be: YuNet's
landmarks on a 4x upscale, the similarity fit (faces.framing_from_landmarks), then 1 and 2 framer
passes (framer.refine). Errors against the true canonical crop: centre and side in % of its side,
angle in degrees. Three versions of the faces:

- plain;
- blurred (Gaussian, sigma 1 px): photos are not all as sharp as CelebA;
- shifted by 1-7 px and JPEG-compressed again (quality 90): CelebA's 8x8 JPEG grid sits at the
  same place relative to every training crop, a clue the network could have learnt instead of the
  face; here it no longer does, so a framer that used it would get worse.

    python benchmarks/framer_check.py [--n 500]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED  # noqa: E402

from completion.faces import detect_faces, framing_from_landmarks  # noqa: E402
from completion.framer import refine  # noqa: E402
from completion.imageio import load_rgb  # noqa: E402
from completion.photo import Framing, center_crop_box  # noqa: E402

FRAC, UPSCALE = 0.72, 4


def landmark_framing(img: np.ndarray) -> Framing | None:
    h, w = img.shape[:2]
    big = cv2.resize(img, (w * UPSCALE, h * UPSCALE), interpolation=cv2.INTER_CUBIC)
    found = detect_faces(big, frame=False)
    if not found:
        return None
    f = framing_from_landmarks(found[0].landmarks, 64)
    return Framing(f.cx / UPSCALE, f.cy / UPSCALE, f.width / UPSCALE, f.height / UPSCALE, f.angle, 64)


def shifted_jpeg(img: np.ndarray, dx: int, dy: int) -> np.ndarray:
    big = cv2.copyMakeBorder(img, dy, 8, dx, 8, cv2.BORDER_REPLICATE)
    buf = io.BytesIO()
    Image.fromarray(big).save(buf, "JPEG", quality=90)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def errors(got: list[Framing], truth: list[tuple[float, float, float]]) -> dict[str, float]:
    e = np.mean(
        [
            (math.hypot(g.cx - cx, g.cy - cy) / s * 100, abs(g.width / s - 1) * 100, abs(g.angle))
            for g, (cx, cy, s) in zip(got, truth, strict=True)
        ],
        0,
    )
    return {
        "centre_pct": round(float(e[0]), 2),
        "side_pct": round(float(e[1]), 2),
        "angle_deg": round(float(e[2]), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    if not SHARED.is_dir():
        raise SystemExit(f"{SHARED}: the shared CelebA subset is not present")
    files = sorted(p for p in SHARED.glob("*.jpg") if 9001 <= int(p.stem) <= 9500)[: args.n]
    rng = np.random.default_rng(0)
    # (image, true crop centre x, y and side) per face and version
    variants: dict[str, list[tuple[np.ndarray, tuple[float, float, float]]]] = {
        "plain": [],
        "blur_1px": [],
        "shift_jpeg": [],
    }
    for p in files:
        img = load_rgb(p)
        x0, y0, side = center_crop_box(img.shape[1], img.shape[0], FRAC)
        cx, cy = x0 + side / 2, y0 + side / 2
        dx, dy = (int(v) for v in rng.integers(1, 8, 2))
        variants["plain"].append((img, (cx, cy, float(side))))
        variants["blur_1px"].append((cv2.GaussianBlur(img, (0, 0), 1.0), (cx, cy, float(side))))
        variants["shift_jpeg"].append((shifted_jpeg(img, dx, dy), (cx + dx, cy + dy, float(side))))
    report: dict[str, dict] = {}
    for name, items in variants.items():
        starts, truth, imgs = [], [], []
        for img, true_crop in items:
            f = landmark_framing(img)
            if f is None:
                continue
            starts.append(f)
            truth.append(true_crop)
            imgs.append(img)
        row = {"faces": len(imgs), "landmarks": errors(starts, truth)}
        for steps in (1, 2):
            got = [refine(img, [f], steps=steps)[0] for img, f in zip(imgs, starts, strict=True)]
            row[f"framer_{steps}_pass{'es' if steps > 1 else ''}"] = errors(got, truth)
        report[name] = row
        print(json.dumps({name: row}), flush=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
