"""Check face finding and photo completion on validation faces pasted into canvases.

The framing itself is fitted by benchmarks/fit_landmarks.py (YuNet's landmarks on training faces
-> completion.faces.CANONICAL, and the --box mapping photo.CROP_*) and benchmarks/fit_framer.py
(the framer's weights, on training faces). This script measures it where
it matters: validation faces (009001-009500) pasted 2x-6x and rotated up to 15 degrees into noise
or gradient canvases, an eyes hole drawn at the canvas resolution. For every canvas: was the face
found, and how far is its framing from the pasted face's true canonical crop (centre and side in %
of the side, angle in degrees), with the framer and from the landmarks alone, and for the same
face given by its YuNet box (as --box gives one) with and without the framer. For the first
--n-psnr canvases also the hole PSNR of (a) completing the canvas vs (b) completing the aligned
64x64 crop directly, with a perfect model's ceiling.
Uses completion/weights/celeba64.pt (--iterations 100) when present; otherwise a random-weight
model, and then the PSNRs are only a plumbing check.

    python benchmarks/photo_calibration.py [--n-evidence 200] [--n-psnr 20] [--no-framer] [--scales 2,6]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from completion import complete as complete_mod
from completion.bundle import Model, load_model
from completion.complete import Completer, CompletionOptions, Optimised
from completion.config import ModelConfig
from completion.errors import CompletionError
from completion.faces import detect_faces, framing_from_box, framing_from_landmarks
from completion.imageio import load_rgb
from completion.masks import make_mask
from completion.metrics import psnr
from completion.models import Discriminator, Generator
from completion.photo import Framing, center_crop_box, crop_to_model

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared" / "datasets" / "celeba_subset" / "img_align_celeba"
FRAC = 0.72  # the canonical crop of the shipped models: center:0.72


def true_crop(width: int, height: int, k: float = 1.0) -> tuple[float, float, float]:
    """Centre x, y and side (edge coordinates, scaled by k) of the canonical crop."""
    x0, y0, side = center_crop_box(width, height, FRAC)
    return k * (x0 + side / 2), k * (y0 + side / 2), k * side


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

    def optimise(
        self, y: torch.Tensor, m: torch.Tensor, callback=None, every: int = 0, seeds=None
    ) -> Optimised:  # noqa: ANN001
        view = crop_to_model(self.truth, self.framing)
        g = torch.from_numpy(view.astype(np.float32)).permute(2, 0, 1)[None] / 127.5 - 1
        return Optimised(
            g, torch.zeros(1, self.model.config.nz), torch.zeros(1), torch.zeros(1, dtype=torch.long)
        )


def evidence(
    completer: Completer, n: int, n_psnr: int, seed: int = 0, scales: tuple[float, float] = (2.0, 6.0)
) -> dict:
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
        scale, angle = rng.uniform(*scales), rng.uniform(-15, 15)
        # At least 160 px: room around a small face, as a photo has (no effect from scale 2 up).
        canvas, edge = paste_face(face, scale, angle, rng, ("noise", "gradient")[i % 2], min_side=160)
        known64, known = eyes_hole((fh, fw), edge, canvas.shape[1], canvas.shape[0])
        x0, y0, side = center_crop_box(fw, fh, FRAC)
        crop = face[y0 : y0 + side, x0 : x0 + side]
        if side != s:
            crop = cv2.resize(crop, (s, s), interpolation=cv2.INTER_AREA)
            known64 = make_mask("eyes", s)
        truth = true_framing((fh, fw), edge, angle, s)
        row = {"file": p.name, "scale": round(scale, 2), "angle": round(angle, 1), "canvas": canvas.shape[:2]}
        # Framing: the detected face nearest the true crop (a spurious "face" elsewhere is harmless:
        # no hole falls into its crop).
        found = detect_faces(canvas)
        if not found:
            row["error"] = "no face found"
            rows.append(row)
            print(json.dumps(row), flush=True)
            continue
        face_ = min(
            found, key=lambda fc: math.hypot(fc.framing(s).cx - truth.cx, fc.framing(s).cy - truth.cy)
        )
        f = face_.framing(s)
        row["found"] = True
        row["faces_found"] = len(found)
        row["framer_kept"] = face_.crop is not None
        row["centre_err_pct"] = math.hypot(f.cx - truth.cx, f.cy - truth.cy) / truth.width * 100
        row["side_err_pct"] = abs(f.width - truth.width) / truth.width * 100
        row["angle_err"] = abs(f.angle - angle)
        # The same face framed from its landmarks alone (before the framer).
        lm = framing_from_landmarks(face_.landmarks, s)
        row["landmarks_centre_err_pct"] = math.hypot(lm.cx - truth.cx, lm.cy - truth.cy) / truth.width * 100
        row["landmarks_side_err_pct"] = abs(lm.width - truth.width) / truth.width * 100
        row["landmarks_angle_err"] = abs(lm.angle - angle)
        # The same face given by its box, as with --box: the box mapping alone, and with the framer.
        for key, g in (
            ("box", Framing.from_box(face_.box, s)),
            ("box_framer", framing_from_box(canvas, face_.box, s)),
        ):
            row[f"{key}_centre_err_pct"] = math.hypot(g.cx - truth.cx, g.cy - truth.cy) / truth.width * 100
            row[f"{key}_side_err_pct"] = abs(g.width - truth.width) / truth.width * 100
            row[f"{key}_angle_err"] = abs(g.angle - angle)
        row["correct"] = row["centre_err_pct"] < 25 and row["side_err_pct"] < 25
        if i >= n_psnr:
            rows.append(row)
            continue
        # (b) the aligned crop completed directly
        direct = completer.complete(crop, known64).image
        row["psnr_aligned"] = psnr(direct, crop, ~known64)
        # (a) the canvas
        try:
            res = completer.complete(canvas, known, name=p.name)
        except CompletionError as e:
            row["error"] = str(e)
            rows.append(row)
            continue
        f = res.framing
        row["psnr_done"] = True
        assert np.array_equal(res.image[known], canvas[known]), "a known pixel changed"
        row["psnr_photo"] = psnr(res.image, canvas, ~known)
        oracle.truth, oracle.framing = canvas, f
        ideal = oracle.complete(canvas, known, name=p.name).image
        row["psnr_photo_perfect_model"] = psnr(ideal, canvas, ~known)
        # (a) seen at the aligned crop's resolution through the true framing, and the resampling
        # floor of that view (the untouched canvas seen the same way).
        back = crop_to_model(res.image, truth)
        floor = crop_to_model(canvas, truth)
        row["psnr_photo_at_64"] = psnr(back, crop, ~known64)
        row["psnr_resampling_floor"] = psnr(floor, crop, ~known64)
        rows.append(row)
        print(
            json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()}), flush=True
        )
    ok = [r for r in rows if r.get("found")]
    good = [r for r in ok if r["correct"]]
    done = [r for r in rows if r.get("psnr_done")]

    def mean(key: str, rs: list[dict]) -> float:
        return round(float(np.mean([r[key] for r in rs])), 2) if rs else float("nan")

    def median(key: str, rs: list[dict]) -> float:
        return round(float(np.median([r[key] for r in rs])), 2) if rs else float("nan")

    return {
        "faces": len(rows),
        "found": len(ok),
        "found_correct": len(good),
        "errors": [r["error"] for r in rows if "error" in r],
        "mean_centre_err_pct": mean("centre_err_pct", ok),
        "mean_side_err_pct": mean("side_err_pct", ok),
        "mean_angle_err_deg": mean("angle_err", ok),
        "framer_kept": sum(r["framer_kept"] for r in ok),
        **{
            label: {
                "mean_centre_err_pct": mean(f"{key}_centre_err_pct", ok),
                "mean_side_err_pct": mean(f"{key}_side_err_pct", ok),
                "mean_angle_err_deg": mean(f"{key}_angle_err", ok),
            }
            for label, key in (
                ("landmarks_only", "landmarks"),
                ("box_only", "box"),
                ("box_with_framer", "box_framer"),
            )
        },
        "median_centre_err_pct": round(float(np.median([r["centre_err_pct"] for r in ok])), 2)
        if ok
        else None,
        "median_side_err_pct": round(float(np.median([r["side_err_pct"] for r in ok])), 2) if ok else None,
        "extra_faces": sum(r["faces_found"] - 1 for r in ok),
        "psnr_faces": len(done),
        "mean_psnr_aligned": mean("psnr_aligned", done),
        "mean_psnr_photo": mean("psnr_photo", done),
        "mean_psnr_photo_at_64": mean("psnr_photo_at_64", done),
        "mean_psnr_resampling_floor": mean("psnr_resampling_floor", done),
        "mean_psnr_photo_perfect_model": mean("psnr_photo_perfect_model", done),
        "seconds": round(time.time() - t, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=REPO / "completion" / "weights" / "celeba64.pt")
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--n-evidence", type=int, default=200, help="Canvases for the framing statistics.")
    ap.add_argument("--n-psnr", type=int, default=20, help="The first N of them also completed.")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--scales", default="2,6", help="LO,HI: faces are pasted at a scale drawn from this range."
    )
    ap.add_argument("--no-framer", action="store_true", help="Frame faces by their landmarks alone.")
    args = ap.parse_args()
    if args.no_framer:
        # Every detection, the completions' included, skips the framer.
        global detect_faces, framing_from_box
        detect_faces = functools.partial(detect_faces, frame=False)
        framing_from_box = functools.partial(framing_from_box, frame=False)
        complete_mod.detect_faces, complete_mod.framing_from_box = detect_faces, framing_from_box
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    if not SHARED.is_dir():
        raise SystemExit(f"{SHARED}: the shared CelebA subset is not present")
    if args.model.exists():
        model, note = load_model(args.model), f"model {args.model}"
    else:
        model = random_model()
        note = f"{args.model} not found: random-weight width-8 model, the PSNRs are only a plumbing check"
    print(note, flush=True)
    completer = Completer(model, CompletionOptions(iterations=args.iterations))
    lo, hi = (float(v) for v in args.scales.split(","))
    report = evidence(completer, args.n_evidence, args.n_psnr, scales=(lo, hi))
    print(json.dumps({"evidence": report, "scales": [lo, hi], "note": note}, indent=1))


if __name__ == "__main__":
    main()
