"""Calibrate the face box -> canonical crop mapping of completion/photo.py, and check photo completion.

1. Calibration. On aligned CelebA faces the model's framing is known exactly (data.center_crop_box,
   a centred square of side 0.72 x width). Each image is upscaled 4x (the 89x109 files are too small
   for the Haar cascade), its face detected, and crop_cx = box_cx + a*w, crop_cy = box_cy + b*w,
   side = c*w fitted: medians, then least squares on the inliers (within 0.1 of the medians).
   Fitted on training images (000001-009000), reported on validation images (009001-009500) as the
   mean absolute error of the crop centre (x, y) and side in % of the crop side.

2. Evidence. Validation faces pasted 2x-6x and rotated up to 15 degrees into noise or gradient
   canvases, an eyes hole drawn at the canvas resolution: detection rate, framing error, and the
   hole PSNR of (a) complete_photo on the canvas vs (b) completing the aligned 64x64 crop directly.
   Uses completion/weights/celeba64.pt (--iterations 100) when present; otherwise a random-weight model, and
   then the PSNRs are only a plumbing check.

    python benchmarks/photo_calibration.py [--model completion/weights/celeba64.pt] [--n-evidence 20]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from completion import photo
from completion.bundle import Model, load_model
from completion.complete import Completer, CompletionOptions, Optimised
from completion.config import ModelConfig
from completion.data import center_crop_box
from completion.errors import CompletionError
from completion.imageio import load_rgb
from completion.masks import make_mask
from completion.metrics import psnr
from completion.models import Discriminator, Generator
from completion.photo import Box, Framing, complete_photo_full, detect_faces, warp_to_model

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared" / "datasets" / "celeba_subset" / "img_align_celeba"
FRAC = 0.72  # the canonical crop of the shipped models: center:0.72
UPSCALE = 4


def true_crop(width: int, height: int, k: float = 1.0) -> tuple[float, float, float]:
    """Centre x, y and side (edge coordinates, scaled by k) of the canonical crop."""
    x0, y0, side = center_crop_box(width, height, FRAC)
    return k * (x0 + side / 2), k * (y0 + side / 2), k * side


def measure(files: list[Path]) -> tuple[np.ndarray, int]:
    """Per detected face: (dx/w, dy/w, side/w) of the true crop relative to the largest box."""
    rows, missed = [], 0
    for p in files:
        img = load_rgb(p)
        h, w = img.shape[:2]
        big = cv2.resize(img, (w * UPSCALE, h * UPSCALE), interpolation=cv2.INTER_CUBIC)
        faces = detect_faces(big)
        if not faces:
            missed += 1
            continue
        b = faces[0]
        cx, cy, side = true_crop(w, h, UPSCALE)
        bx, by = b.centre
        rows.append(((cx - bx) / b.w, (cy - by) / b.w, side / b.w))
    return np.array(rows).reshape(-1, 3), missed


def fit(r: np.ndarray) -> tuple[np.ndarray, float]:
    med = np.median(r, 0)
    inl = np.all(np.abs(r - med) < 0.1 * np.array([1, 1, med[2]]), axis=1)
    # Least squares of (crop - box) = k * w over the inliers with the residual divided by w is the
    # mean of the ratios.
    return r[inl].mean(0), float(inl.mean())


def errors(r: np.ndarray, consts: np.ndarray) -> dict[str, float]:
    """Mean absolute error in % of the true crop side: centre x, centre y, centre (distance), side."""
    a, b, c = consts
    side = r[:, 2]  # in box widths
    ex = np.abs(r[:, 0] - a) / side * 100
    ey = np.abs(r[:, 1] - b) / side * 100
    es = np.abs(c - side) / side * 100
    return {
        "centre_x_pct": float(ex.mean()),
        "centre_y_pct": float(ey.mean()),
        "centre_pct": float(np.hypot(ex, ey).mean()),
        "side_pct": float(es.mean()),
        "median_centre_pct": float(np.median(np.hypot(ex, ey))),
        "median_side_pct": float(np.median(es)),
    }


def calibrate(n_train: int, n_val: int) -> dict:
    files = sorted(SHARED.glob("*.jpg"))
    train_all = [p for p in files if int(p.stem) <= 9000]
    val_all = [p for p in files if 9001 <= int(p.stem) <= 9500]
    step = max(1, len(train_all) // n_train)
    train = train_all[::step][:n_train]
    val = val_all[:n_val]
    t = time.time()
    rt, mt = measure(train)
    consts, inlier_share = fit(rt)
    rv, mv = measure(val)
    current = np.array([photo.CROP_DX, photo.CROP_DY, photo.CROP_SIDE])
    return {
        "train_images": len(train),
        "train_detected": len(rt),
        "train_inlier_share": round(inlier_share, 3),
        "medians": [round(float(v), 4) for v in np.median(rt, 0)],
        "fitted": dict(
            zip(("CROP_DX", "CROP_DY", "CROP_SIDE"), (round(float(v), 4) for v in consts), strict=True)
        ),
        "val_images": len(val),
        "val_detected": len(rv),
        "val_error_fitted": {k: round(v, 2) for k, v in errors(rv, consts).items()},
        "val_error_module_constants": {k: round(v, 2) for k, v in errors(rv, current).items()},
        "seconds": round(time.time() - t, 1),
        "missed": mt + mv,
    }


# -- evidence: faces pasted into canvases ---------------------------------------------------------


def random_model(size: int = 64) -> Model:
    torch.manual_seed(0)
    cfg = ModelConfig(image_size=size, ngf=8, ndf=8)
    g, d = Generator(cfg).eval().requires_grad_(False), Discriminator(cfg).eval().requires_grad_(False)
    return Model(cfg, g, d)


def canvas_background(kind: str, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "noise":
        small = rng.integers(0, 256, (max(2, h // 8), max(2, w // 8), 3), dtype=np.uint8)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    t = np.linspace(0, 1, w)[None, :, None] * 0.5 + np.linspace(0, 1, h)[:, None, None] * 0.5
    return (a + (b - a) * t).astype(np.uint8)


def paste_face(
    face: np.ndarray, scale: float, angle: float, rng: np.random.Generator, kind: str, min_side: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Paste face scaled and rotated (degrees, clockwise on screen) into a larger canvas.

    Returns (canvas, 2x3 edge-coordinate affine from face to canvas)."""
    fh, fw = face.shape[:2]
    diag = math.hypot(fw, fh) * scale
    w = max(min_side, int(diag * rng.uniform(1.3, 1.8)))
    h = max(min_side, int(diag * rng.uniform(1.3, 1.8)))
    cx = rng.uniform(diag / 2 + 2, w - diag / 2 - 2)
    cy = rng.uniform(diag / 2 + 2, h - diag / 2 - 2)
    t = math.radians(angle)
    rot = scale * np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    off = np.array([cx, cy]) - rot @ np.array([fw / 2, fh / 2])
    edge = np.hstack([rot, off[:, None]])
    centre = edge.copy()  # the same map in pixel-centre coordinates
    centre[:, 2] = rot @ [0.5, 0.5] + off - 0.5
    bg = canvas_background(kind, w, h, rng).astype(np.float32)
    warped = cv2.warpAffine(face, centre, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(np.ones((fh, fw), np.float32), centre, (w, h), flags=cv2.INTER_LINEAR)[..., None]
    canvas = np.clip(np.rint(alpha * warped + (1 - alpha) * bg), 0, 255).astype(np.uint8)
    return canvas, edge


def apply(edge: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return np.asarray(pts, np.float64) @ edge[:, :2].T + edge[:, 2]


def true_framing(face_shape: tuple[int, int], edge: np.ndarray, angle: float, size: int) -> Framing:
    cx, cy, side = true_crop(face_shape[1], face_shape[0])
    (ccx, ccy) = apply(edge, [[cx, cy]])[0]
    k = math.hypot(edge[0, 0], edge[1, 0])
    return Framing(ccx, ccy, side * k, side * k, angle, size)


def expected_box(framing: Framing) -> Box:
    """The face box the calibrated mapping expects for a crop (axis-aligned, ignoring rotation)."""
    bw = framing.width / photo.CROP_SIDE
    bx = framing.cx - photo.CROP_DX * bw
    by = framing.cy - photo.CROP_DY * bw
    return Box(round(bx - bw / 2), round(by - bw / 2), round(bw), round(bw))


def eyes_hole(
    face_shape: tuple[int, int], edge: np.ndarray, cw: int, ch: int
) -> tuple[np.ndarray, np.ndarray]:
    """The 'eyes' band of the 64-px canonical crop, (64x64 known, canvas known)."""
    fh, fw = face_shape
    x0, y0, side = center_crop_box(fw, fh, FRAC)
    known64 = make_mask("eyes", side)
    rows, cols = np.nonzero(~known64)
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    rect = np.array(
        [[x0 + c0, y0 + r0], [x0 + c1, y0 + r0], [x0 + c1, y0 + r1], [x0 + c0, y0 + r1]], np.float64
    )
    # fillPoly works on pixel centres: shift edge coordinates by -0.5 and draw sub-pixel exactly.
    poly = np.round((apply(edge, rect) - 0.5) * 16).astype(np.int32)
    hole = np.zeros((ch, cw), np.uint8)
    cv2.fillPoly(hole, [poly], 255, cv2.LINE_8, shift=4)
    return known64, hole == 0


class OracleCompleter(Completer):
    """A perfect model: G(z*) is the true photo seen through the chosen framing. Its hole PSNR is
    the ceiling that framing, warping back and blending leave for any model."""

    truth: np.ndarray  # the untouched photo
    framing: Framing

    def optimise(self, y: torch.Tensor, m: torch.Tensor, callback=None, every: int = 0) -> Optimised:  # noqa: ANN001
        view, _ = warp_to_model(self.truth, np.ones(self.truth.shape[:2], bool), self.framing)
        g = torch.from_numpy(view.astype(np.float32)).permute(2, 0, 1)[None] / 127.5 - 1
        return Optimised(g, torch.zeros(1, self.model.config.nz), torch.zeros(1))


def evidence(completer: Completer, n: int, seed: int = 0) -> dict:
    files = sorted(p for p in SHARED.glob("*.jpg") if 9001 <= int(p.stem) <= 9500)
    files = files[:: max(1, len(files) // max(1, n))][:n]
    rng = np.random.default_rng(seed)
    s = completer.size
    oracle = OracleCompleter(completer.model, completer.options)
    rows = []
    t = time.time()
    for i, p in enumerate(files):
        face = load_rgb(p)
        fh, fw = face.shape[:2]
        scale, angle = rng.uniform(2, 6), rng.uniform(-15, 15)
        canvas, edge = paste_face(face, scale, angle, rng, ("noise", "gradient")[i % 2])
        known64, known = eyes_hole((fh, fw), edge, canvas.shape[1], canvas.shape[0])
        x0, y0, side = center_crop_box(fw, fh, FRAC)
        crop = face[y0 : y0 + side, x0 : x0 + side]
        if side != s:
            crop = cv2.resize(crop, (s, s), interpolation=cv2.INTER_AREA)
            known64 = make_mask("eyes", s)
        truth = true_framing((fh, fw), edge, angle, s)
        row = {"file": p.name, "scale": round(scale, 2), "angle": round(angle, 1), "canvas": canvas.shape[:2]}
        # (b) the aligned crop completed directly
        direct = completer.complete(crop, known64).image
        row["psnr_aligned"] = psnr(direct, crop, ~known64)
        # (a) the canvas
        try:
            res = complete_photo_full(completer, canvas, known, name=p.name)
        except CompletionError as e:
            row["error"] = str(e)
            rows.append(row)
            continue
        f = res.framing
        row["found"] = True
        row["centre_err_pct"] = math.hypot(f.cx - truth.cx, f.cy - truth.cy) / truth.width * 100
        row["side_err_pct"] = abs(f.width - truth.width) / truth.width * 100
        row["angle_err"] = abs(f.angle - angle)
        row["eyes_found"] = f.angle != 0.0
        row["correct"] = row["centre_err_pct"] < 25 and row["side_err_pct"] < 25
        assert np.array_equal(res.image[known], canvas[known]), "a known pixel changed"
        row["psnr_photo"] = psnr(res.image, canvas, ~known)
        oracle.truth, oracle.framing = canvas, f
        ideal = complete_photo_full(oracle, canvas, known, name=p.name).image
        row["psnr_photo_perfect_model"] = psnr(ideal, canvas, ~known)
        # (a) seen at the aligned crop's resolution through the true framing, and the resampling
        # floor of that view (the untouched canvas seen the same way).
        back, _ = warp_to_model(res.image, np.ones(known.shape, bool), truth)
        floor, _ = warp_to_model(canvas, np.ones(known.shape, bool), truth)
        row["psnr_photo_at_64"] = psnr(back, crop, ~known64)
        row["psnr_resampling_floor"] = psnr(floor, crop, ~known64)
        rows.append(row)
        print(
            json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()}), flush=True
        )
    ok = [r for r in rows if r.get("found")]
    good = [r for r in ok if r["correct"]]

    def mean(key: str, rs: list[dict]) -> float:
        return round(float(np.mean([r[key] for r in rs])), 2) if rs else float("nan")

    return {
        "faces": len(rows),
        "found": len(ok),
        "found_correct": len(good),
        "errors": [r["error"] for r in rows if "error" in r],
        "mean_centre_err_pct": mean("centre_err_pct", ok),
        "mean_side_err_pct": mean("side_err_pct", ok),
        "eyes_found": sum(r["eyes_found"] for r in ok),
        "mean_angle_err_deg": mean("angle_err", ok),
        "mean_angle_err_deg_eyes_found": mean("angle_err", [r for r in ok if r["eyes_found"]]),
        "mean_psnr_aligned_all": mean("psnr_aligned", rows),
        "mean_psnr_aligned_found": mean("psnr_aligned", ok),
        "mean_psnr_photo": mean("psnr_photo", ok),
        "mean_psnr_photo_at_64": mean("psnr_photo_at_64", ok),
        "mean_psnr_resampling_floor": mean("psnr_resampling_floor", ok),
        "mean_psnr_photo_perfect_model": mean("psnr_photo_perfect_model", ok),
        "seconds": round(time.time() - t, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=REPO / "completion" / "weights" / "celeba64.pt")
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--n-train", type=int, default=400)
    ap.add_argument("--n-val", type=int, default=500)
    ap.add_argument("--n-evidence", type=int, default=20)
    ap.add_argument("--skip-calibration", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    if not SHARED.is_dir():
        raise SystemExit(f"{SHARED}: the shared CelebA subset is not present")
    if not args.skip_calibration:
        print(json.dumps({"calibration": calibrate(args.n_train, args.n_val)}, indent=1), flush=True)
    if args.model.exists():
        model, note = load_model(args.model), f"model {args.model}"
    else:
        model = random_model()
        note = f"{args.model} not found: random-weight width-8 model, the PSNRs are only a plumbing check"
    print(note, flush=True)
    completer = Completer(model, CompletionOptions(iterations=args.iterations))
    print(json.dumps({"evidence": evidence(completer, args.n_evidence), "note": note}, indent=1))


if __name__ == "__main__":
    main()
