"""Geometry of faces in photos of any size: boxes, the model's crop, warps, masks and paste-back.

A user's photo is not an aligned model-size crop: it is 640x480 or 4000x3000 with faces anywhere,
and the hole is drawn at the photo's resolution. This module knows where the model's S x S crop of
a face lies in the photo (a Framing: from landmarks in faces.py, from a box, or the canonical centre
crop of an aligned image), warps the photo and the hole to it, draws generated masks in it, gives
each hole region to the face whose crop covers it, and pastes G(z*) back only into the hole,
Poisson-blended at full resolution. Every pixel outside the hole is bit-identical to the input.
complete.py runs the model; faces.py finds the faces; nothing here imports either.

Coordinates: boxes and crop centres are in "edge" coordinates (pixel i covers [i, i+1)); the 2x3
matrices are in OpenCV's pixel-centre coordinates, as cv2.warpAffine uses them."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np

from .blend import poisson_blend, seamless_clone
from .config import VALID_SIZES, parse_crop
from .masks import make_mask

log = logging.getLogger(__name__)

# Box -> canonical crop mapping, for a face given by its box (--box) rather than its landmarks.
# For a box with centre (bx, by) and bw = sqrt(w * h), the model's crop is the square of
#   centre = (bx + CROP_DX * bw, by + CROP_DY * bw),  side = CROP_SIDE * bw,
# fitted by benchmarks/fit_landmarks.py on YuNet's boxes of 1800 aligned CelebA training faces
# (every 5th of 000001-009000): read a hand-drawn box the way YuNet draws one.
CROP_DX = -0.0161
CROP_DY = -0.1606
CROP_SIDE = 1.276


def center_crop_box(width: int, height: int, frac: float) -> tuple[int, int, int]:
    """(x0, y0, side) of the centred square whose side is frac * width."""
    side = max(1, min(round(frac * width), width, height))
    return (width - side) // 2, (height - side) // 2, side


def resize(img: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize HxWxC uint8 to size (square int, or (w, h)); area filter down, cubic up."""
    w, h = (size, size) if isinstance(size, int) else size
    if img.shape[1] == w and img.shape[0] == h:
        return img
    shrink = w < img.shape[1] or h < img.shape[0]
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


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


def is_face_crop(width: int, height: int, size: int) -> bool:
    """Whether an image is already a model's face crop: square, at this model's size or any model
    size (a 64x64 face given to the 128-px model is a face, not a photo to crop again)."""
    return width == height and (width == size or width in VALID_SIZES)


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
    def canonical(cls, width: int, height: int, size: int, crop: str) -> Framing:
        """The training crop of an aligned image: center_crop_box, or all of it for a model
        trained without a crop. On whole pixels, so crop_to_model slices and resizes it."""
        frac = parse_crop(crop)
        if frac is None:
            return cls(width / 2, height / 2, float(width), float(height), 0.0, size)
        x0, y0, side = center_crop_box(width, height, frac)
        return cls(x0 + side / 2, y0 + side / 2, float(side), float(side), 0.0, size)

    @classmethod
    def aligned(cls, width: int, height: int, size: int, crop: str) -> Framing:
        """The framing of an already aligned input: the training crop (canonical), except that a
        face crop (is_face_crop: e.g. a 64x64 face for a 128-px model) is taken as is."""
        if is_face_crop(width, height, size):
            return cls(width / 2, height / 2, float(width), float(height), 0.0, size)
        return cls.canonical(width, height, size, crop)

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


def _homog(m: np.ndarray) -> np.ndarray:
    return np.vstack([m, [0.0, 0.0, 1.0]])


def _pixel_rect(framing: Framing, width: int, height: int) -> tuple[int, int, int, int] | None:
    """x0, y0, x1, y1 when the crop is an upright rectangle on whole pixels inside the image (the
    training crop of an aligned image); None otherwise."""
    if framing.angle != 0:
        return None
    edges = (
        framing.cx - framing.width / 2,
        framing.cy - framing.height / 2,
        framing.cx + framing.width / 2,
        framing.cy + framing.height / 2,
    )
    x0, y0, x1, y1 = (round(e) for e in edges)
    if any(abs(e - r) > 1e-9 for e, r in zip(edges, (x0, y0, x1, y1), strict=True)):
        return None
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        return None
    return x0, y0, x1, y1


def crop_to_model(image: np.ndarray, framing: Framing) -> np.ndarray:
    """The model's S x S view of an image (uint8): the one canonical crop. A crop on whole pixels
    (Framing.canonical: training's data, `complete --aligned`, evaluate) is that slice resized with
    `resize`, exactly as training always cropped; any other is warped (see warp_to_model). No mask
    is carried, so no photo-sized one is made."""
    return _to_model(image, None, framing)[0]


def warp_to_model(image: np.ndarray, known: np.ndarray, framing: Framing) -> tuple[np.ndarray, np.ndarray]:
    """The model's S x S view of a photo: (uint8 SxSx3 image, SxS bool known).

    A crop on whole pixels is cut and resized as training does (crop_to_model); its known mask is
    resized the same way (linear when enlarging), a pixel known only if it stays 1. Otherwise
    shrinking is done first with cv2.resize (INTER_AREA) on the axis-aligned region under the crop,
    then the remaining rotation and small rescale with cv2.warpAffine (linear), so a face of 2000 px
    is not aliased. A model pixel is known only if every photo pixel under it is known and inside
    the photo (the float mask is area-averaged and interpolated; anything below 1 is hole)."""
    out, kn = _to_model(image, known, framing)
    assert kn is not None
    return out, kn


def _to_model(
    image: np.ndarray, known: np.ndarray | None, framing: Framing
) -> tuple[np.ndarray, np.ndarray | None]:
    """warp_to_model, with the known mask optional (None in, None out)."""
    s = framing.size
    h, w = image.shape[:2]
    rect = _pixel_rect(framing, w, h)
    if rect is not None:
        x0, y0, x1, y1 = rect
        out = resize(image[y0:y1, x0:x1], s)
        if known is None:
            return out, None
        kn = known[y0:y1, x0:x1].astype(np.float32)
        if kn.shape != (s, s):
            shrink = x1 - x0 > s or y1 - y0 > s
            kn = cv2.resize(kn, (s, s), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        return out, kn >= 1.0 - 1e-4
    x0, y0, x1, y1 = _bounds(framing, w, h)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((s, s, 3), np.uint8), None if known is None else np.zeros((s, s), bool)
    img = image[y0:y1, x0:x1]
    kn = None if known is None else known[y0:y1, x0:x1].astype(np.float32)
    # Region pixel centre p' = (p - origin + 0.5) * f - 0.5 per axis, f = new/old size.
    r = 1.0 / framing.scale
    rw, rh = x1 - x0, y1 - y0
    if r < 1.0:
        nw, nh = max(1, round(rw * r)), max(1, round(rh * r))
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
        if kn is not None:
            kn = cv2.resize(kn, (nw, nh), interpolation=cv2.INTER_AREA)
        fx, fy = nw / rw, nh / rh
    else:
        fx = fy = 1.0
    pre = np.array([[fx, 0, (0.5 - x0) * fx - 0.5], [0, fy, (0.5 - y0) * fy - 0.5], [0, 0, 1]])
    m = (_homog(framing.matrix) @ np.linalg.inv(pre))[:2]
    interp = cv2.INTER_LINEAR if r < 1.0 else cv2.INTER_CUBIC
    out = cv2.warpAffine(img, m, (s, s), flags=interp, borderMode=cv2.BORDER_REPLICATE)
    if kn is None:
        return out, None
    kn_s = cv2.warpAffine(
        kn, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    return out, kn_s >= 1.0 - 1e-4


# -- masks and holes ------------------------------------------------------------------------------


def draw_mask_type(spec: str, framings: list[Framing], height: int, width: int, seed: int = 0) -> np.ndarray:
    """A generated mask (masks.make_mask spec) drawn in each face's S x S model frame and warped
    into the photo: known HxW bool, the hole the union over the faces.

    A photo pixel is hole when the model pixel its centre falls on is (nearest neighbour), so on an
    aligned image whose crop is the model's size the hole is exactly evaluate's."""
    known = np.ones((height, width), bool)
    for f in framings:
        x0, y0, x1, y1 = _bounds(f, width, height, pad=0)
        if x1 <= x0 or y1 <= y0:
            continue
        hole_s = (~make_mask(spec, f.size, f.size, seed=seed)).astype(np.uint8)
        # Region pixel (i, j) is photo pixel (x0 + i, y0 + j); the matrix maps it to the model image.
        to_model = (_homog(f.matrix) @ np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], np.float64))[:2]
        hole_r = cv2.warpAffine(
            hole_s,
            to_model,
            (x1 - x0, y1 - y0),
            flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        ).astype(bool)
        hole_r &= f.inside(x0, y0, x1 - x0, y1 - y0)
        known[y0:y1, x0:x1] &= ~hole_r
    return known


def assign_holes(hole: np.ndarray, framings: list[Framing]) -> tuple[list[np.ndarray], np.ndarray]:
    """Give each hole region (4-connected) to the face whose crop covers most of it.

    Returns (per face: HxW bool, its share of the hole; HxW bool: the regions no crop touches)."""
    count, labels = cv2.connectedComponents(hole.astype(np.uint8), connectivity=4)
    h, w = hole.shape
    cover = np.zeros((len(framings), count), np.int64)
    for i, f in enumerate(framings):
        x0, y0, x1, y1 = _bounds(f, w, h, pad=0)
        if x1 <= x0 or y1 <= y0:
            continue
        lab = labels[y0:y1, x0:x1][f.inside(x0, y0, x1 - x0, y1 - y0)]
        cover[i] = np.bincount(lab, minlength=count)
    cover[:, 0] = 0  # label 0 is the known background
    owner = np.where(cover.max(0) > 0, cover.argmax(0), -1) if framings else np.full(count, -1)
    owner[0] = -2
    shares = [hole & (owner[labels] == i) for i in range(len(framings))]
    return shares, hole & (owner[labels] == -1)


def inpaint_classic(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """OpenCV's Telea inpainting of the hole (for hole pixels no face's crop covers), worked on the
    hole's bounding box plus context; pixels outside the hole are untouched."""
    if not hole.any():
        return image
    ys, xs = np.nonzero(hole)
    h, w = hole.shape
    pad = 8  # Telea's radius is 5: a little more context than it reads
    x0, y0 = max(0, int(xs.min()) - pad), max(0, int(ys.min()) - pad)
    x1, y1 = min(w, int(xs.max()) + pad + 1), min(h, int(ys.max()) + pad + 1)
    sub = hole[y0:y1, x0:x1]
    painted = cv2.inpaint(
        np.ascontiguousarray(image[y0:y1, x0:x1]), sub.astype(np.uint8) * 255, 5, cv2.INPAINT_TELEA
    )
    out = image.copy()
    out[y0:y1, x0:x1][sub] = painted[sub]
    return out


def paste_back(
    image: np.ndarray,
    hole: np.ndarray,
    framing: Framing,
    generated: np.ndarray,
    blend: str,
) -> tuple[np.ndarray, int]:
    """Warp the model-size G(z*) (SxSx3, 0-255) into the photo's hole, blended; returns (photo,
    number of hole pixels outside the crop, which OpenCV's Telea inpainting fills instead).

    `hole` is this face's share of the hole only (see assign_holes): other faces' holes count as
    known here, and no 4-neighbour of this hole belongs to them, so they never act as boundary."""
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
