"""Fit where YuNet's five landmarks sit in the model's canonical crop, and the box -> crop mapping.

On aligned CelebA faces the model's framing is known exactly: the centred square of side 0.72 x
width (photo.center_crop_box), resized to the model size. Each TRAINING face (000001-009000, every
--step-th) is upscaled 4x, YuNet finds its largest face, and

- its landmarks, as fractions of the crop's side (edge coordinates), are averaged into
  completion.faces.CANONICAL;
- its box gives (crop centre - box centre) / bw and crop side / bw with bw = sqrt(w * h),
  averaged over the inliers (within 0.1 of the medians) into photo.CROP_DX, CROP_DY, CROP_SIDE
  (used for --box).

The validation faces (009001-009500) are only scored, never fitted: the mean absolute error of the
crop's centre and side (in % of the side) and angle (degrees) framed from landmarks, and from the
box. Paste the printed constants into completion/faces.py and completion/photo.py.

    python benchmarks/fit_landmarks.py [--step 5] [--n-val 500]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED  # noqa: E402

from completion import faces as faces_mod  # noqa: E402
from completion import photo  # noqa: E402
from completion.faces import detect_faces, framing_from_landmarks  # noqa: E402
from completion.imageio import load_rgb  # noqa: E402
from completion.photo import Framing, center_crop_box  # noqa: E402

FRAC = 0.72  # the canonical crop of the shipped models: center:0.72
UPSCALE = 4
SIZE = 64


def measure(files: list[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Per detected face: landmarks in crop fractions (N, 5, 2), box rows (N, 3) of
    ((cx - bx) / bw, (cy - by) / bw, side / bw), true crops (N, 3) of (cx, cy, side); misses."""
    lms, boxes, truth, missed = [], [], [], 0
    for p in files:
        img = load_rgb(p)
        h, w = img.shape[:2]
        big = cv2.resize(img, (w * UPSCALE, h * UPSCALE), interpolation=cv2.INTER_CUBIC)
        found = detect_faces(big, frame=False)
        if not found:
            missed += 1
            continue
        f = found[0]
        x0, y0, side = center_crop_box(w, h, FRAC)
        pts = f.landmarks / UPSCALE
        lms.append((pts - [x0, y0]) / side)
        bx, by = (v / UPSCALE for v in f.box.centre)
        bw = math.sqrt(f.box.w * f.box.h) / UPSCALE
        cx, cy = x0 + side / 2, y0 + side / 2
        boxes.append(((cx - bx) / bw, (cy - by) / bw, side / bw))
        truth.append((cx, cy, side, *pts.ravel()))
    return np.array(lms).reshape(-1, 5, 2), np.array(boxes).reshape(-1, 3), np.array(truth), missed


def fit_box(r: np.ndarray) -> np.ndarray:
    med = np.median(r, 0)
    inl = np.all(np.abs(r - med) < 0.1 * np.array([1, 1, med[2]]), axis=1)
    return r[inl].mean(0)


def framing_errors(framings: list[Framing], truth: np.ndarray) -> dict[str, float]:
    ec = [math.hypot(f.cx - t[0], f.cy - t[1]) / t[2] * 100 for f, t in zip(framings, truth, strict=True)]
    es = [abs(f.width - t[2]) / t[2] * 100 for f, t in zip(framings, truth, strict=True)]
    ea = [abs(f.angle) for f in framings]
    return {
        "centre_pct": round(float(np.mean(ec)), 2),
        "side_pct": round(float(np.mean(es)), 2),
        "angle_deg": round(float(np.mean(ea)), 2),
        "median_centre_pct": round(float(np.median(ec)), 2),
        "median_side_pct": round(float(np.median(es)), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--step", type=int, default=5, help="Use every STEP-th training face.")
    ap.add_argument("--n-val", type=int, default=500)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    if not SHARED.is_dir():
        raise SystemExit(f"{SHARED}: the shared CelebA subset is not present")
    files = sorted(SHARED.glob("*.jpg"))
    train = [p for p in files if int(p.stem) <= 9000][:: args.step]
    val = [p for p in files if 9001 <= int(p.stem) <= 9500][: args.n_val]
    t = time.time()
    lt, bt, _, mt = measure(train)
    canonical = lt.mean(0)
    box = fit_box(bt)
    _, _, tv, mv = measure(val)
    # Score the fitted constants on the validation faces.
    faces_mod.CANONICAL = canonical
    lm_framings = [framing_from_landmarks(row[3:].reshape(5, 2), SIZE) for row in tv]
    photo.CROP_DX, photo.CROP_DY, photo.CROP_SIDE = box
    nose = faces_mod.FIT_POINTS
    faces_mod.FIT_POINTS = (0, 1, 2, 3, 4)
    all5 = [framing_from_landmarks(row[3:].reshape(5, 2), SIZE) for row in tv]
    faces_mod.FIT_POINTS = nose
    print(
        json.dumps(
            {
                "train_faces": len(train),
                "train_detected": len(lt),
                "CANONICAL": np.round(canonical, 4).tolist(),
                "landmark_spread_std": np.round(lt.std(0), 4).tolist(),
                "CROP_DX_DY_SIDE": np.round(box, 4).tolist(),
                "val_faces": len(val),
                "val_detected": len(tv),
                "missed": mt + mv,
                "val_error_landmarks": framing_errors(lm_framings, tv),
                "val_error_all_five_landmarks": framing_errors(all5, tv),
                "seconds": round(time.time() - t, 1),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
