"""Faces in real photos of any size: detect, frame as in training, complete, paste back.

A user's photo is not an aligned model-size crop: it is 640x480 or 4000x3000 with a face somewhere,
and the hole is drawn at the photo's resolution. complete_photo

1. finds the face (OpenCV's Haar cascades shipped in cv2.data; the face whose crop overlaps the hole
   most), or takes its box by hand (--box), or, for aligned crops, the canonical centre crop;
2. maps it to the model's canonical framing with a calibrated box -> crop mapping (rotated so that
   the eyes are level where both are found) and warps the photo and the hole to the model size;
3. completes the crop, warps G(z*) back to the photo's resolution and pastes it only into the hole,
   Poisson-blended at full resolution. Every pixel outside the hole is bit-identical to the input.

Coordinates: boxes and crop centres are in "edge" coordinates (pixel i covers [i, i+1)); the 2x3
matrices are in OpenCV's pixel-centre coordinates, as cv2.warpAffine uses them."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .blend import poisson_blend, seamless_clone
from .config import parse_crop
from .data import center_crop_box
from .errors import ImageError, MaskError

if TYPE_CHECKING:
    from .complete import Completer, Completion, StepCallback

log = logging.getLogger(__name__)

# Calibrated box -> canonical crop mapping (benchmarks/photo_calibration.py re-runs the fit).
# For a detected (square) face box with centre (bx, by) and width bw, the model's crop is the square
#   centre = (bx + CROP_DX * bw, by + CROP_DY * bw),  side = CROP_SIDE * bw.
# Fitted on 400 aligned CelebA training faces (every 22nd of 000001-009000, 4x upscaled; 388
# detected): the mean over the 73% within 0.1 of the medians (-0.011, -0.155, 1.231). On the 500
# validation faces (009001-009500, 486 detected) the mean absolute error is 1.4% of the crop side
# for the centre's x, 1.6% for its y (2.4% as a distance) and 8.1% for the side (median 6.3%): the
# Haar box's size is the noisy part.
CROP_DX = -0.011
CROP_DY = -0.156
CROP_SIDE = 1.225

# Detection runs on a copy whose long side is at most this (Haar cost grows with the pixel count).
DETECT_MAX_SIDE = 1024
# Eye-line rotations beyond this are taken as a wrong eye pair and ignored (the face cascades
# themselves only find faces tilted up to about 15-20 degrees).
MAX_EYE_ANGLE = 25.0
NO_FACE = "{name}: no face found; give its box with --box x,y,w,h or use --aligned for aligned crops"


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in photo pixels: left, top, width, height."""

    x: int
    y: int
    w: int
    h: int

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2

    @property
    def area(self) -> int:
        return self.w * self.h

    def iou(self, other: Box) -> float:
        ix = max(0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union else 0.0


def parse_box(spec: str) -> Box:
    """'x,y,w,h' (integers, w and h positive) -> Box; ValueError otherwise."""
    parts = [p.strip() for p in str(spec).split(",")]
    if len(parts) != 4:
        raise ValueError(f"box {spec!r}: expected x,y,w,h (four integers), e.g. 120,80,200,200")
    try:
        x, y, w, h = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"box {spec!r}: expected x,y,w,h (four integers), e.g. 120,80,200,200") from None
    if w < 1 or h < 1:
        raise ValueError(f"box {spec!r}: width and height must be positive")
    return Box(x, y, w, h)


# -- detection ------------------------------------------------------------------------------------


@cache
def _cascade(name: str) -> cv2.CascadeClassifier:
    c = cv2.CascadeClassifier(cv2.data.haarcascades + name)
    if c.empty():
        raise ImageError(f"OpenCV cascade {name} could not be loaded from {cv2.data.haarcascades}")
    return c


def _gray(rgb: np.ndarray) -> np.ndarray:
    if rgb.ndim == 2:
        return rgb
    return cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2GRAY)


def detect_faces(rgb: np.ndarray) -> list[Box]:
    """Frontal faces in an HxWx3 uint8 RGB image, largest first (Haar 'default', then 'alt2').

    Big photos are searched at a long side of DETECT_MAX_SIDE; faces smaller than about 1/20 of the
    short side (and than 24 px at that scale) are not looked for."""
    gray = _gray(rgb)
    h, w = gray.shape
    f = min(1.0, DETECT_MAX_SIDE / max(h, w))
    if f < 1.0:
        gray = cv2.resize(gray, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    gray = cv2.equalizeHist(gray)
    min_side = max(24, min(gray.shape) // 20)
    if min(gray.shape) < min_side:
        return []
    found: np.ndarray | tuple = ()
    for name in ("haarcascade_frontalface_default.xml", "haarcascade_frontalface_alt2.xml"):
        found = _cascade(name).detectMultiScale(
            gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side)
        )
        if len(found):
            break
    boxes = [
        Box(round(x / f), round(y / f), max(1, round(bw / f)), max(1, round(bh / f)))
        for x, y, bw, bh in found
    ]
    return sorted(boxes, key=lambda b: -b.area)


def detect_eyes(rgb: np.ndarray, box: Box) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """Centres (x, y) of the (image-)left and right eye inside a face box, or None.

    Searches the upper half of the box with haarcascade_eye at a face width of about 200 px and keeps
    the most plausible pair: one eye in each half, at similar heights, a sensible distance apart."""
    hh, ww = rgb.shape[:2]
    x0, y0 = max(0, box.x), max(0, box.y)
    x1, y1 = min(ww, box.x + box.w), min(hh, box.y + round(box.h * 0.55))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    gray = _gray(rgb[y0:y1, x0:x1])
    f = 200.0 / box.w
    interp = cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR
    gray = cv2.resize(
        gray, (max(1, round(gray.shape[1] * f)), max(1, round(gray.shape[0] * f))), interpolation=interp
    )
    gray = cv2.equalizeHist(gray)
    found = _cascade("haarcascade_eye.xml").detectMultiScale(
        gray, scaleFactor=1.1, minNeighbors=4, minSize=(20, 20), maxSize=(90, 90)
    )
    fw = 200.0  # face width at this scale
    eyes = [(x + w / 2, y + h / 2, w) for x, y, w, h in found]
    left = [e for e in eyes if e[0] < fw / 2]
    right = [e for e in eyes if e[0] >= fw / 2]
    best, best_score = None, math.inf
    for lx, ly, lw in left:
        for rx, ry, rw in right:
            dx, dy = rx - lx, ry - ly
            if not 0.25 * fw <= dx <= 0.7 * fw or abs(dy) > 0.2 * fw:
                continue
            if max(lw, rw) > 1.6 * min(lw, rw):
                continue
            # Prefer level pairs at the usual eye distance (~0.4 of the box) and similar sizes.
            score = abs(dy) / fw + abs(dx / fw - 0.4) + abs(lw - rw) / fw
            if score < best_score:
                best, best_score = ((lx, ly), (rx, ry)), score
    if best is None:
        return None
    (lx, ly), (rx, ry) = best
    return (x0 + lx / f, y0 + ly / f), (x0 + rx / f, y0 + ry / f)


def eye_angle(eyes: tuple[tuple[float, float], tuple[float, float]] | None) -> float:
    """Tilt of the eye line in degrees (positive: the right eye lower, clockwise on screen)."""
    if eyes is None:
        return 0.0
    (lx, ly), (rx, ry) = eyes
    angle = math.degrees(math.atan2(ry - ly, rx - lx))
    return angle if abs(angle) <= MAX_EYE_ANGLE else 0.0


# -- framing --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Framing:
    """The model's crop in a photo: a (rotated) rectangle mapped onto the S x S model image.

    cx, cy: its centre (edge coordinates); width, height: its sides in photo pixels (equal except
    for --aligned with a model trained without a crop); angle: its tilt in degrees (the face's eye
    line); size: S."""

    cx: float
    cy: float
    width: float
    height: float
    angle: float
    size: int

    @classmethod
    def from_box(cls, box: Box, size: int, angle: float = 0.0) -> Framing:
        """The calibrated crop for a face box (detected, or given by hand with --box).

        A hand-drawn box is read like a detector's: a square around the face; a non-square one
        counts as the square of the same centre and area. The crop's offset from the box centre is
        rotated with the face."""
        bw = math.sqrt(box.w * box.h)
        bx, by = box.centre
        t = math.radians(angle)
        dx, dy = CROP_DX * bw, CROP_DY * bw
        cx = bx + dx * math.cos(t) - dy * math.sin(t)
        cy = by + dx * math.sin(t) + dy * math.cos(t)
        side = CROP_SIDE * bw
        return cls(cx, cy, side, side, angle, size)

    @classmethod
    def aligned(cls, width: int, height: int, size: int, crop: str) -> Framing:
        """The training framing of an already aligned image: data.center_crop_box, or all of it
        for a model trained without a crop or an image already at the model size."""
        frac = parse_crop(crop)
        if frac is None or (width, height) == (size, size):  # as Completer.prepare: taken as is
            return cls(width / 2, height / 2, float(width), float(height), 0.0, size)
        x0, y0, side = center_crop_box(width, height, frac)
        return cls(x0 + side / 2, y0 + side / 2, float(side), float(side), 0.0, size)

    @property
    def matrix(self) -> np.ndarray:
        """2x3 affine from photo pixel centres to model pixel centres."""
        s = self.size
        t = math.radians(self.angle)
        c, n = math.cos(t), math.sin(t)
        kx, ky = s / self.width, s / self.height
        # q = K R(-t) (p + 0.5 - centre) + S/2 - 0.5
        lin = np.array([[kx * c, kx * n], [-ky * n, ky * c]])
        off = lin @ np.array([0.5 - self.cx, 0.5 - self.cy]) + (s / 2 - 0.5)
        return np.hstack([lin, off[:, None]])

    @property
    def inverse(self) -> np.ndarray:
        """2x3 affine from model pixel centres back to photo pixel centres."""
        return cv2.invertAffineTransform(self.matrix)

    @property
    def scale(self) -> float:
        """Photo pixels per model pixel (the larger of the two axes)."""
        return max(self.width, self.height) / self.size

    @property
    def area(self) -> float:
        return self.width * self.height

    def to_model(self, pts: np.ndarray) -> np.ndarray:
        """(N, 2) photo pixel coordinates -> model pixel coordinates."""
        pts = np.asarray(pts, np.float64).reshape(-1, 2)
        return pts @ self.matrix[:, :2].T + self.matrix[:, 2]

    def to_photo(self, pts: np.ndarray) -> np.ndarray:
        """(N, 2) model pixel coordinates -> photo pixel coordinates."""
        inv = self.inverse
        pts = np.asarray(pts, np.float64).reshape(-1, 2)
        return pts @ inv[:, :2].T + inv[:, 2]

    def corners(self) -> np.ndarray:
        """The crop's four corners in photo pixel coordinates (outer edges of the model pixels)."""
        e = self.size - 0.5
        return self.to_photo(np.array([[-0.5, -0.5], [e, -0.5], [e, e], [-0.5, e]]))

    def inside(self, x0: int, y0: int, w: int, h: int) -> np.ndarray:
        """h x w bool: which photo pixels of the region at (x0, y0) the crop covers."""
        m = self.matrix
        xs = np.arange(x0, x0 + w, dtype=np.float64)[None, :]
        ys = np.arange(y0, y0 + h, dtype=np.float64)[:, None]
        qx = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]
        qy = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
        lo, hi = -0.5, self.size - 0.5
        return (qx >= lo) & (qx <= hi) & (qy >= lo) & (qy <= hi)


def _bounds(framing: Framing, width: int, height: int, pad: int = 2) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 of the photo region under the crop (clipped to the photo; may be empty)."""
    c = framing.corners()
    x0 = max(0, math.floor(c[:, 0].min()) - pad)
    y0 = max(0, math.floor(c[:, 1].min()) - pad)
    x1 = min(width, math.ceil(c[:, 0].max()) + pad + 1)
    y1 = min(height, math.ceil(c[:, 1].max()) + pad + 1)
    return x0, y0, max(x0, x1), max(y0, y1)


def _hole_inside(hole: np.ndarray, framing: Framing) -> int:
    """Number of hole pixels the crop covers."""
    x0, y0, x1, y1 = _bounds(framing, hole.shape[1], hole.shape[0], pad=0)
    if x1 <= x0 or y1 <= y0:
        return 0
    sub = hole[y0:y1, x0:x1]
    if not sub.any():
        return 0
    return int((sub & framing.inside(x0, y0, x1 - x0, y1 - y0)).sum())


def _homog(m: np.ndarray) -> np.ndarray:
    return np.vstack([m, [0.0, 0.0, 1.0]])


def warp_to_model(image: np.ndarray, known: np.ndarray, framing: Framing) -> tuple[np.ndarray, np.ndarray]:
    """The model's S x S view of a photo: (uint8 SxSx3 image, SxS bool known).

    Shrinking is done first with cv2.resize (INTER_AREA) on the axis-aligned region under the crop,
    then the remaining rotation and small rescale with cv2.warpAffine (linear), so a face of 2000 px
    is not aliased. A model pixel is known only if every photo pixel under it is known and inside
    the photo (the float mask is area-averaged and interpolated; anything below 1 is hole)."""
    s = framing.size
    h, w = known.shape
    x0, y0, x1, y1 = _bounds(framing, w, h)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((s, s, 3), np.uint8), np.zeros((s, s), bool)
    img = image[y0:y1, x0:x1]
    kn = known[y0:y1, x0:x1].astype(np.float32)
    # Region pixel centre p' = (p - origin + 0.5) * f - 0.5 per axis, f = new/old size.
    r = 1.0 / framing.scale
    rw, rh = x1 - x0, y1 - y0
    if r < 1.0:
        nw, nh = max(1, round(rw * r)), max(1, round(rh * r))
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
        kn = cv2.resize(kn, (nw, nh), interpolation=cv2.INTER_AREA)
        fx, fy = nw / rw, nh / rh
    else:
        fx = fy = 1.0
    pre = np.array([[fx, 0, (0.5 - x0) * fx - 0.5], [0, fy, (0.5 - y0) * fy - 0.5], [0, 0, 1]])
    m = (_homog(framing.matrix) @ np.linalg.inv(pre))[:2]
    interp = cv2.INTER_LINEAR if r < 1.0 else cv2.INTER_CUBIC
    out = cv2.warpAffine(img, m, (s, s), flags=interp, borderMode=cv2.BORDER_REPLICATE)
    kn_s = cv2.warpAffine(
        kn, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    return out, kn_s >= 1.0 - 1e-4


# -- choosing the face ----------------------------------------------------------------------------


def choose_framing(
    image: np.ndarray,
    hole: np.ndarray,
    size: int,
    crop: str,
    box: Box | None = None,
    aligned: bool = False,
    name: str = "image",
) -> Framing:
    """The crop to complete: the aligned centre crop, the given box's, or the detected face's that
    overlaps the hole most (rotated so that the eyes are level where both are found)."""
    h, w = hole.shape
    if aligned:
        return Framing.aligned(w, h, size, crop)
    if box is not None:
        if box.x >= w or box.y >= h or box.x + box.w <= 0 or box.y + box.h <= 0:
            raise MaskError(f"{name}: box {box.x},{box.y},{box.w},{box.h} lies outside the {w}x{h} image")
        return Framing.from_box(box, size, eye_angle(detect_eyes(image, box)))
    faces = detect_faces(image)
    if not faces:
        raise ImageError(NO_FACE.format(name=name))
    overlaps = [_hole_inside(hole, Framing.from_box(f, size)) for f in faces]
    best = int(np.argmax(overlaps))
    if overlaps[best] == 0:
        found = ", ".join(f"{f.x},{f.y},{f.w},{f.h}" for f in faces)
        raise MaskError(
            f"{name}: the hole lies outside every face found ({len(faces)}: {found}); "
            "draw it over a face or give the face with --box x,y,w,h"
        )
    face = faces[best]
    return Framing.from_box(face, size, eye_angle(detect_eyes(image, face)))


# -- completion -----------------------------------------------------------------------------------


def frame_input(
    image: np.ndarray,
    known: np.ndarray,
    size: int,
    crop: str,
    box: Box | None = None,
    aligned: bool = False,
    name: str = "image",
) -> tuple[Framing, np.ndarray, np.ndarray]:
    """Choose the face crop for an image with a hole and warp both to the model's size.

    Returns (framing, SxSx3 uint8 view, SxS bool known mask). Raises MaskError when the hole
    misses the crop or is bigger than it, ImageError when no face is found."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ImageError(f"{name}: expected an HxWx3 uint8 RGB image")
    if image.shape[:2] != known.shape:
        raise MaskError(
            f"{name}: mask is {known.shape[1]}x{known.shape[0]} but the image is "
            f"{image.shape[1]}x{image.shape[0]}"
        )
    hole = ~known.astype(bool)
    framing = choose_framing(image, hole, size, crop, box, aligned, name)
    if _hole_inside(hole, framing) == 0:
        raise MaskError(
            f"{name}: the hole lies outside the face crop (centre {framing.cx:.0f},{framing.cy:.0f}, "
            f"side {framing.width:.0f}); draw it over the face"
        )
    n_hole = int(hole.sum())
    if n_hole > framing.area:
        raise MaskError(
            f"{name}: the hole ({n_hole} px) is bigger than the face crop "
            f"({round(framing.width)}x{round(framing.height)} = {round(framing.area)} px); "
            "draw a smaller hole, or give the whole face with --box"
        )
    view, kn = warp_to_model(image, known, framing)
    return framing, view, kn


def complete_photo_full(
    completer: Completer,
    image: np.ndarray,
    known: np.ndarray,
    box: Box | None = None,
    aligned: bool = False,
    name: str = "image",
    callback: StepCallback | None = None,
    every: int = 0,
) -> Completion:
    """complete_photo with its intermediate results (framing, crop, mask and G(z*) at model size).

    callback(iteration, G(z)) is called every `every` optimisation steps (for --save-steps)."""
    return completer.complete_many([(image, known)], callback, every, aligned=aligned, box=box, names=[name])[
        0
    ]


def paste_back(
    image: np.ndarray,
    hole: np.ndarray,
    framing: Framing,
    generated: np.ndarray,
    blend: str,
    name: str = "image",
) -> tuple[np.ndarray, int]:
    """Warp the model-size G(z*) (SxSx3, 0-255) into the photo's hole, blended; returns (photo,
    number of hole pixels outside the crop, which OpenCV's Telea inpainting fills instead)."""
    h, w = hole.shape
    ys, xs = np.nonzero(hole)
    pad = 3  # the Poisson boundary needs one ring of known pixels; a few more give inpaint context
    x0, y0 = max(0, int(xs.min()) - pad), max(0, int(ys.min()) - pad)
    x1, y1 = min(w, int(xs.max()) + pad + 1), min(h, int(ys.max()) + pad + 1)
    rw, rh = x1 - x0, y1 - y0
    hole_r = hole[y0:y1, x0:x1]
    in_r = hole_r & framing.inside(x0, y0, rw, rh)
    out_r = hole_r & ~in_r
    # Region pixel (i, j) is photo pixel (x0 + i, y0 + j); the matrix maps it to the model image.
    to_model = (_homog(framing.matrix) @ np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], np.float64))[:2]
    source = cv2.warpAffine(
        np.ascontiguousarray(generated, dtype=np.float32),
        to_model,
        (rw, rh),
        flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    ).astype(np.float64)
    work = image[y0:y1, x0:x1].astype(np.float64)
    work[in_r] = source[in_r]
    outside = int(out_r.sum())
    if outside:
        log.warning(
            "%s: %d of %d hole pixels lie outside the face crop; filled them with OpenCV inpainting",
            name,
            outside,
            int(hole_r.sum()),
        )
        painted = cv2.inpaint(
            np.clip(np.rint(work), 0, 255).astype(np.uint8),
            out_r.astype(np.uint8) * 255,
            5,
            cv2.INPAINT_TELEA,
        )
        work[out_r] = painted[out_r]
    if blend == "poisson":
        work = poisson_blend(work, source, in_r)
    elif blend == "opencv":
        work = seamless_clone(work, source, in_r)
    out = image.copy()
    region = out[y0:y1, x0:x1]
    region[hole_r] = np.clip(np.rint(work[hole_r]), 0, 255).astype(np.uint8)
    return out, outside


def complete_photo(
    completer: Completer,
    image: np.ndarray,
    known: np.ndarray,
    box: Box | None = None,
    aligned: bool = False,
    name: str = "image",
) -> np.ndarray:
    """Complete the face in a photo of any size (HxWx3 uint8) whose mask `known` (HxW bool) is
    True where known; returns the completed photo, bit-identical to the input outside the hole.

    The face is the detected one whose crop overlaps the hole most, or the one in `box` (as a face
    detector would draw it), or, with aligned=True, the canonical centre crop of the whole image.
    Raises ImageError when no face is found and MaskError when the hole misses the face or is
    bigger than its crop."""
    return complete_photo_full(completer, image, known, box, aligned, name).image
