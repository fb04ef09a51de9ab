"""Judge a model on ground-truth faces: mask them, complete them with the model and with OpenCV's
Telea and Navier-Stokes inpainting, and compare PSNR (whole, hole), SSIM and time per image.

The faces are aligned images as they come (e.g. CelebA's 89x109): each is completed the way
`complete --aligned --mask-type T` completes it (the mask drawn in the canonical crop and warped
into the image, the result pasted back at the image's resolution) and scored on the canonical crop
at the model's size. An image already at the model's size is its own crop."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from .complete import Completer
from .data import load_face
from .errors import ImageError
from .imageio import atomic_write, load_rgb, save_image
from .metrics import psnr, ssim
from .photo import Framing, crop_to_model, draw_mask_type, warp_to_model

log = logging.getLogger(__name__)
DEFAULT_MASK_TYPES = ("center", "left", "random:0.8", "pattern", "eyes", "mouth")


@dataclass
class Row:
    mask_type: str
    method: str
    psnr: float
    psnr_hole: float
    ssim: float
    seconds: float  # per image


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    n_images: int = 0

    def markdown(self) -> str:
        lines = [
            "| mask | method | PSNR dB | PSNR hole dB | SSIM | s / image |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for r in self.rows:
            lines.append(
                f"| {r.mask_type} | {r.method} | {r.psnr:.2f} | {r.psnr_hole:.2f} "
                f"| {r.ssim:.4f} | {r.seconds:.3f} |"
            )
        return "\n".join(lines) + "\n"

    def to_json(self) -> str:
        return json.dumps({"n_images": self.n_images, "rows": [r.__dict__ for r in self.rows]}, indent=2)


def load_faces(files: list[Path], size: int, crop: str) -> list[np.ndarray]:
    faces = []
    for f in files:
        try:
            faces.append(load_face(f, size, crop))
        except ImageError as e:
            log.warning("skipped %s", e)
    return faces


def load_images(files: list[Path]) -> list[np.ndarray]:
    """The images as they are (for evaluate, which frames them itself); unreadable ones skipped."""
    images = []
    for f in files:
        try:
            images.append(load_rgb(f))
        except ImageError as e:
            log.warning("skipped %s", e)
    return images


def opencv_inpaint(image: np.ndarray, known: np.ndarray, method: str) -> np.ndarray:
    flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
    out = cv2.inpaint(image, (~known).astype(np.uint8) * 255, 3, flag)
    out[known] = image[known]
    return out


def blank_holes(faces: list[np.ndarray], knowns: list[np.ndarray]) -> list[np.ndarray]:
    """The inputs every method gets: holes set to black, so no ground truth can leak into an answer."""
    return [np.where(k[..., None], f, 0).astype(np.uint8) for f, k in zip(faces, knowns, strict=True)]


def score(
    truth: list[np.ndarray], outs: list[np.ndarray], knowns: list[np.ndarray]
) -> tuple[float, float, float]:
    """Mean PSNR (whole image), PSNR (hole) and SSIM of completions against the truth."""
    p = np.mean([psnr(t, o) for t, o in zip(truth, outs, strict=True)])
    ph = np.mean([psnr(t, o, ~k) for t, o, k in zip(truth, outs, knowns, strict=True) if (~k).any()])
    s = np.mean([ssim(t, o) for t, o in zip(truth, outs, strict=True)])
    return float(p), float(ph), float(s)


def evaluate(
    completer: Completer,
    faces: list[np.ndarray],
    mask_types: tuple[str, ...] | list[str] = DEFAULT_MASK_TYPES,
    batch_size: int = 64,
    baselines: bool = True,
    out_dir: Path | None = None,
    grid_rows: int = 8,
    progress: bool = True,
) -> Report:
    """Score the completer (and OpenCV baselines) on aligned ground-truth faces (any size; see the
    module's note), at the model's size. Face i's mask is drawn with seed i."""
    report = Report(n_images=len(faces))
    size, crop = completer.size, completer.model.config.crop
    framings = [Framing.aligned(f.shape[1], f.shape[0], size, crop) for f in faces]

    def view(image: np.ndarray, framing: Framing) -> np.ndarray:
        return crop_to_model(image, framing)

    truths = [view(f, fr) for f, fr in zip(faces, framings, strict=True)]
    for mask_type in mask_types:
        full = [
            draw_mask_type(mask_type, [fr], f.shape[0], f.shape[1], seed=i)
            for i, (f, fr) in enumerate(zip(faces, framings, strict=True))
        ]
        knowns = [warp_to_model(f, k, fr)[1] for f, k, fr in zip(faces, full, framings, strict=True)]
        inputs = blank_holes(faces, full)
        results: dict[str, list[np.ndarray]] = {}
        seconds: dict[str, float] = {}
        if baselines:
            for method in ("telea", "ns"):
                t0 = time.perf_counter()
                outs = [opencv_inpaint(f, k, method) for f, k in zip(inputs, full, strict=True)]
                seconds[method] = (time.perf_counter() - t0) / len(faces)
                results[method] = [view(o, fr) for o, fr in zip(outs, framings, strict=True)]
        ours: list[np.ndarray] = []
        t0 = time.perf_counter()
        bar = tqdm(total=len(faces), desc=f"{mask_type}", unit="img", disable=not progress, leave=False)
        for s in range(0, len(faces), batch_size):
            chunk = list(zip(inputs[s : s + batch_size], full[s : s + batch_size], strict=True))
            done = completer.complete_many(chunk, aligned=True)
            ours += [view(c.image, fr) for c, fr in zip(done, framings[s : s + batch_size], strict=True)]
            bar.update(len(chunk))
        bar.close()
        seconds["ours"] = (time.perf_counter() - t0) / len(faces)
        results["ours"] = ours
        for method, outs in results.items():
            p, ph, s = score(truths, outs, knowns)
            report.rows.append(Row(mask_type, method, p, ph, s, seconds[method]))
        if out_dir is not None:
            _save_grid(Path(out_dir) / f"grid_{_slug(mask_type)}.png", truths, knowns, results, grid_rows)
    if out_dir is not None:
        out_dir = Path(out_dir)
        atomic_write(out_dir / "results.md", lambda tmp: Path(tmp).write_text(report.markdown()))
        atomic_write(out_dir / "results.json", lambda tmp: Path(tmp).write_text(report.to_json()))
    return report


def _slug(mask_type: str) -> str:
    return mask_type.replace(":", "-").replace(".", "")


def _save_grid(path: Path, faces, knowns, results, rows: int) -> None:  # noqa: ANN001
    """Rows: images; columns: masked, Telea, NS, ours, ground truth."""
    pad = 2
    lines = []
    for i in range(min(rows, len(faces))):
        masked = faces[i].copy()
        masked[~knowns[i]] = 255
        cells = [masked] + [results[m][i] for m in ("telea", "ns", "ours") if m in results] + [faces[i]]
        sep = np.full((faces[i].shape[0], pad, 3), 255, np.uint8)
        lines.append(np.concatenate([x for c in cells for x in (c, sep)][:-1], axis=1))
        lines.append(np.full((pad, lines[-1].shape[1], 3), 255, np.uint8))
    save_image(path, np.concatenate(lines[:-1], axis=0))
