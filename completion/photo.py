"""Geometry of faces in photos of any size: boxes, the model's crop, warps, masks and paste-back.

A user's photo is not an aligned model-size crop: it is 640x480 or 4000x3000 with faces anywhere,
and the hole is drawn at the photo's resolution. This module knows where the model's S x S crop of
a face lies in the photo (a Framing: from landmarks in faces.py, from a box, or the canonical centre
crop of an aligned image), warps the photo and the hole to it, draws generated masks in it, gives
each hole region to the face whose crop covers it, and pastes G(z*) back only into the hole,
Poisson-blended at full resolution (a large hole coarse to fine, in bounded memory:
_paste_large). Every pixel outside the hole is bit-identical to the input.
complete.py runs the model; faces.py finds the faces; nothing here imports either.

Coordinates: boxes and crop centres are in "edge" coordinates (pixel i covers [i, i+1)); the 2x3
matrices are in OpenCV's pixel-centre coordinates, as cv2.warpAffine uses them."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph
import scipy.sparse.linalg as spla

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

# paste_back solves the Poisson blend of a hole up to DIRECT_MAX pixels in one sparse LU at full
# resolution, on float copies of the hole's bounding box: about 0.5 GB for a square hole of this
# size (the LU's fill grows faster than the hole). Larger holes, or holes whose bounding box
# exceeds REGION_MAX pixels, go coarse to fine (_paste_large) and touch the photo only in uint8.
DIRECT_MAX = 200_000
REGION_MAX = 4_000_000
# The coarse solve's hole cells and grid cells at most (one LU of ~0.2 GB, small float grids).
COARSE_MAX = 100_000
GRID_MAX = 1_000_000
# Points per cv2.remap call or per row block: float temporaries of a few tens of MB.
CHUNK = 1 << 20
# The side of the band's tiles (each one LU of at most (side + 2 (2f + 3))^2 pixels).
BAND_TILE = 256


def _u8(a: np.ndarray) -> np.ndarray:
    """Float pixel values rounded to uint8."""
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


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
        lo, hi = -0.5, self.size - 0.5
        out = np.empty((h, w), bool)
        step = max(1, CHUNK // max(w, 1))  # float64 temporaries a few MB, not photo-sized
        for r in range(0, h, step):
            ys = np.arange(y0 + r, y0 + min(h, r + step), dtype=np.float64)[:, None]
            qx = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]
            qy = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
            out[r : r + step] = (qx >= lo) & (qx <= hi) & (qy >= lo) & (qy <= hi)
        return out


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
        if kn.shape == (s, s):
            return out, kn >= 1.0 - 1e-4
        shrink = x1 - x0 > s or y1 - y0 > s
        interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR

        def resample(a: np.ndarray) -> np.ndarray:
            return cv2.resize(a, (s, s), interpolation=interp)

        return _known_view(out, resample(kn), image[y0:y1, x0:x1], kn, resample)
    x0, y0, x1, y1 = _bounds(framing, w, h)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((s, s, 3), np.uint8), None if known is None else np.zeros((s, s), bool)
    img = image[y0:y1, x0:x1]
    kn = None if known is None else known[y0:y1, x0:x1].astype(np.float32)
    # Region pixel centre p' = (p - origin + 0.5) * f - 0.5 per axis, f = new/old size.
    r = 1.0 / framing.scale
    rw, rh = x1 - x0, y1 - y0
    shrunk = (max(1, round(rw * r)), max(1, round(rh * r))) if r < 1.0 else None
    fx, fy = (shrunk[0] / rw, shrunk[1] / rh) if shrunk else (1.0, 1.0)
    pre = np.array([[fx, 0, (0.5 - x0) * fx - 0.5], [0, fy, (0.5 - y0) * fy - 0.5], [0, 0, 1]])
    m = (_homog(framing.matrix) @ np.linalg.inv(pre))[:2]

    def shrink(a: np.ndarray) -> np.ndarray:
        return cv2.resize(a, shrunk, interpolation=cv2.INTER_AREA) if shrunk else a

    interp = cv2.INTER_LINEAR if shrunk else cv2.INTER_CUBIC
    out = cv2.warpAffine(shrink(img), m, (s, s), flags=interp, borderMode=cv2.BORDER_REPLICATE)
    if kn is None:
        return out, None

    def resample(a: np.ndarray) -> np.ndarray:
        """Like the image, linear: the share of each model pixel that is known photo pixels."""
        return cv2.warpAffine(
            shrink(a), m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )

    return _known_view(out, resample(kn), img, kn, resample)


def _known_view(
    out: np.ndarray,
    kn_s: np.ndarray,
    src: np.ndarray,
    kn: np.ndarray,
    resample: Callable[[np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """The known mask of a resampled view (kn_s: the photo's known mask resampled like the image).

    A model pixel is known only if every photo pixel under it is known. A mask whose known pixels
    are finer than the model's grid (scattered pixels, grid:4, lowres:4 in a photo) would then keep
    almost none, and the face would come from the model's prior alone: where that rule keeps less
    than half of the pixels that are at least a tenth known, those are known, valued from the known
    photo pixels alone (normalised resampling: the hole's pixels never enter). A tenth, not a half
    or a quarter: on 99 validation faces as photos it gave the best hole PSNR on random:0.8,
    grid:4 and lowres:4 (README, "Scattered masks in photos")."""
    strict, loose = kn_s >= 1.0 - 1e-4, kn_s >= 0.1
    if strict.sum() >= 0.5 * loose.sum():
        return out, strict
    weighted = resample(np.ascontiguousarray(src, dtype=np.float32) * kn[..., None])
    fill = loose & ~strict
    out = out.copy()
    out[fill] = _u8(weighted[fill] / kn_s[fill][:, None])
    return out, loose


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
    h, w = hole.shape
    shares = [np.zeros((h, w), bool) for _ in framings]
    nowhere = np.zeros((h, w), bool)
    box = _hole_box(hole, 1)
    if box is None:
        return shares, nowhere
    # Labels only over the hole's bounding box (plus a ring, so no region touches its edge
    # where the photo goes on): int32 there, and bool lookups rather than int64 photo-sized maps.
    bx0, by0, bx1, by1 = box
    count, labels = cv2.connectedComponents(hole[by0:by1, bx0:bx1].astype(np.uint8), connectivity=4)
    cover = np.zeros((len(framings), count), np.int64)
    for i, f in enumerate(framings):
        x0, y0, x1, y1 = _bounds(f, w, h, pad=0)
        x0, y0, x1, y1 = max(x0, bx0), max(y0, by0), min(x1, bx1), min(y1, by1)
        if x1 <= x0 or y1 <= y0:
            continue
        lab = labels[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0][f.inside(x0, y0, x1 - x0, y1 - y0)]
        cover[i] = np.bincount(lab, minlength=count)
    cover[:, 0] = 0  # label 0 is the known background
    owner = np.where(cover.max(0) > 0, cover.argmax(0), -1) if framings else np.full(count, -1)
    owner[0] = -2
    for i in range(len(framings)):
        shares[i][by0:by1, bx0:bx1] = (owner == i)[labels]
    nowhere[by0:by1, bx0:bx1] = (owner == -1)[labels]
    return shares, nowhere


def _hole_box(hole: np.ndarray, pad: int) -> tuple[int, int, int, int] | None:
    """x0, y0, x1, y1 of the hole's bounding box grown by pad (clipped to the array); None if empty."""
    rows, cols = np.flatnonzero(hole.any(axis=1)), np.flatnonzero(hole.any(axis=0))
    if rows.size == 0:
        return None
    h, w = hole.shape
    x0, y0 = max(0, int(cols[0]) - pad), max(0, int(rows[0]) - pad)
    return x0, y0, min(w, int(cols[-1]) + pad + 1), min(h, int(rows[-1]) + pad + 1)


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
    # The Poisson boundary needs one ring of known pixels; a few more give inpaint context.
    box = _hole_box(hole, 3)
    if box is None:
        return image.copy(), 0
    x0, y0, x1, y1 = box
    rw, rh = x1 - x0, y1 - y0
    hole_r = hole[y0:y1, x0:x1]
    in_r = hole_r & framing.inside(x0, y0, rw, rh)
    out_r = hole_r & ~in_r
    # Region pixel (i, j) is photo pixel (x0 + i, y0 + j); the matrix maps it to the model image.
    to_model = (_homog(framing.matrix) @ np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], np.float64))[:2]
    if blend in ("poisson", "none") and (int(in_r.sum()) > DIRECT_MAX or rw * rh > REGION_MAX):
        return _paste_large(image, (x0, y0), in_r, out_r, to_model, generated, blend)
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
            _u8(work),
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
    region[hole_r] = _u8(work[hole_r])
    return out, outside


# -- large holes ----------------------------------------------------------------------------------


def _sample(img: np.ndarray, m: np.ndarray, ys: np.ndarray, xs: np.ndarray, interp: int) -> np.ndarray:
    """(N, C) float32: img (HxWxC float32) at the points m maps region pixels (xs, ys) to, as
    cv2.warpAffine(img, m, ..., interp | WARP_INVERSE_MAP, BORDER_REPLICATE) would give there."""
    out = np.empty((len(ys), img.shape[2]), np.float32)
    for a in range(0, len(ys), CHUNK):
        x = xs[a : a + CHUNK].astype(np.float64)
        y = ys[a : a + CHUNK].astype(np.float64)
        k = len(x)
        # remap wants maps under 32767 rows: the points as rows of 1024, the last one padded.
        maps = np.zeros((2, -(-k // 1024) * 1024), np.float32)
        maps[0, :k] = m[0, 0] * x + m[0, 1] * y + m[0, 2]
        maps[1, :k] = m[1, 0] * x + m[1, 1] * y + m[1, 2]
        mx, my = maps.reshape(2, -1, 1024)
        got = cv2.remap(img, mx, my, interp, borderMode=cv2.BORDER_REPLICATE)
        out[a : a + k] = got.reshape(-1, img.shape[2])[:k]
    return out


def _paste_large(
    image: np.ndarray,
    origin: tuple[int, int],
    in_r: np.ndarray,
    out_r: np.ndarray,
    to_model: np.ndarray,
    generated: np.ndarray,
    blend: str,
) -> tuple[np.ndarray, int]:
    """paste_back for a large hole, in memory bounded whatever its size or shape.

    The Poisson fill is G + h with h harmonic in the hole and h = image - G on its boundary. h is
    solved on a grid of f x f cells (cells wholly in the hole unknown, the others the mean of
    image - G over their pixels outside the hole), interpolated, and solved exactly again at full
    resolution in a band of hole pixels within 2f + 2 of the boundary, whose inner edge takes the
    interpolated h: the fill meets every boundary pixel as the full solve does, and inside the
    band differs from it by a smooth residue. Only uint8 and bool arrays of the region are made;
    float values exist per sampled pixel, in blocks."""
    x0, y0 = origin
    rh, rw = in_r.shape
    out = image.copy()
    reg = out[y0 : y0 + rh, x0 : x0 + rw]  # a view: hole pixels are written into out directly
    gen = np.ascontiguousarray(generated, dtype=np.float32)

    def g(ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        return _sample(gen, to_model, ys, xs, cv2.INTER_CUBIC)

    outside = int(out_r.sum())
    if outside:
        _fill_outside(reg, in_r, out_r, g)
    if blend == "none":
        _fill_rows(reg, in_r, g)
        return out, outside
    f, coarse = _coarse_correction(reg, in_r, g)
    # Region pixel centre -> cell centre coordinates, for the bilinear read of h.
    to_cell = np.array([[1 / f, 0, 0.5 / f - 0.5], [0, 1 / f, 0.5 / f - 0.5]])

    def smooth(ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        return g(ys, xs) + _sample(coarse, to_cell, ys, xs, cv2.INTER_LINEAR)

    width = 2 * f + 2
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    # Eroded with the region's outside as hole: the photo's edge is no boundary (Neumann).
    inner = cv2.erode(in_r.astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=1) > 0
    _solve_rim(reg, in_r & ~inner, inner, width + 1, g, smooth)
    _fill_rows(reg, inner, smooth)
    return out, outside


Sampler = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _fill_outside(reg: np.ndarray, in_r: np.ndarray, out_r: np.ndarray, g: Sampler) -> None:
    """The hole outside the face crop: Telea on its bounding box only, the crop's part as G."""
    bx0, by0, bx1, by1 = _hole_box(out_r, 8)
    sub = reg[by0:by1, bx0:bx1].copy()
    sy, sx = np.nonzero(in_r[by0:by1, bx0:bx1])
    sub[sy, sx] = _u8(g(sy + by0, sx + bx0))
    hole_s = out_r[by0:by1, bx0:bx1]
    painted = cv2.inpaint(sub, hole_s.astype(np.uint8) * 255, 5, cv2.INPAINT_TELEA)
    reg[by0:by1, bx0:bx1][hole_s] = painted[hole_s]


def _coarse_correction(reg: np.ndarray, in_r: np.ndarray, g: Sampler) -> tuple[int, np.ndarray]:
    """The cell size f and h = image - G solved on the grid of f x f cells (float32, cells x 3)."""
    rh, rw = in_r.shape
    n = int(in_r.sum())
    f = max(2, math.ceil(math.sqrt(n / COARSE_MAX)), math.ceil(math.sqrt(rw * rh / GRID_MAX)))
    hc, wc = -(-rh // f), -(-rw // f)
    padded = np.ones((hc * f, wc * f), bool)
    padded[:rh, :rw] = in_r
    cells = padded.reshape(hc, f, wc, f)
    full = cells.all(axis=(1, 3))  # the coarse hole
    padded[rh:, :] = False
    padded[:, rw:] = False
    touched = cells.any(axis=(1, 3))
    del padded, cells
    # Cells whose value the coarse solve or the interpolation reads: next to a cell with hole.
    need = (cv2.dilate(touched.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0) & ~full
    pick = np.repeat(np.repeat(need, f, axis=0), f, axis=1)[:rh, :rw] & ~in_r
    sums, count = np.zeros((hc * wc, 3)), np.zeros(hc * wc)
    step = max(1, CHUNK // (rw * f)) * f  # whole rows of cells at a time
    for r in range(0, rh, step):
        ys, xs = np.nonzero(pick[r : r + step])
        ys += r
        diff = reg[ys, xs].astype(np.float32) - g(ys, xs)
        cell = (ys // f) * wc + xs // f
        count += np.bincount(cell, minlength=hc * wc)
        for c in range(3):
            sums[:, c] += np.bincount(cell, diff[:, c], minlength=hc * wc)
    mean = sums / np.maximum(count, 1)[:, None]
    del pick, sums, count  # before the solve: the region-sized mask is not needed there
    return f, poisson_blend(mean.reshape(hc, wc, 3), np.zeros((hc, wc, 3)), full).astype(np.float32)


def _solve_rim(
    reg: np.ndarray, band: np.ndarray, inner: np.ndarray, m: int, g: Sampler, smooth: Sampler
) -> None:
    """The band along the hole's rim solved exactly, in tiles, each with a margin of m around it
    whose outer ring takes smooth() too (as the band's inner edge does): one LU per tile, so a
    hole all rim (a random mask) costs time, not memory."""
    rh, rw = band.shape
    t = BAND_TILE
    for cy in range(0, rh, t):
        for cx in range(0, rw, t):
            if not band[cy : cy + t, cx : cx + t].any():
                continue
            wy0, wx0, wy1, wx1 = max(0, cy - m), max(0, cx - m), min(rh, cy + t + m), min(rw, cx + t + m)
            b, i = band[wy0:wy1, wx0:wx1].copy(), inner[wy0:wy1, wx0:wx1].copy()
            ring = np.ones_like(b)  # the window's outermost pixels, where the region goes on
            ring[int(wy0 > 0) : b.shape[0] - int(wy1 < rh), int(wx0 > 0) : b.shape[1] - int(wx1 < rw)] = False
            i |= b & ring
            b &= ~ring

            def src(ys: np.ndarray, xs: np.ndarray, oy: int = wy0, ox: int = wx0) -> np.ndarray:
                return g(ys + oy, xs + ox)

            def fit(ys: np.ndarray, xs: np.ndarray, oy: int = wy0, ox: int = wx0) -> np.ndarray:
                return smooth(ys + oy, xs + ox)

            ys, xs, values = _solve_band(reg[wy0:wy1, wx0:wx1], b, i, src, fit)
            ys, xs = ys + wy0, xs + wx0
            core = (ys >= cy) & (ys < cy + t) & (xs >= cx) & (xs < cx + t)
            reg[ys[core], xs[core]] = values[core]


def _fill_rows(reg: np.ndarray, where: np.ndarray, value: Sampler) -> None:
    """reg[where] = value(ys, xs) rounded to uint8, a block of rows at a time."""
    step = max(1, CHUNK // max(1, where.shape[1]))
    for r in range(0, where.shape[0], step):
        ys, xs = np.nonzero(where[r : r + step])
        if len(ys):
            reg[ys + r, xs] = _u8(value(ys + r, xs))


def _solve_band(
    reg: np.ndarray, band: np.ndarray, inner: np.ndarray, source: Sampler, smooth: Sampler
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The full-resolution Poisson equation on the band's pixels: guidance the source's gradient,
    Dirichlet values the region's pixels outside the hole and smooth() on the inner hole; the
    array's edge is Neumann. Band regions touching neither are pinned to the source. Returns the
    band's pixels (ys, xs) and their uint8 values."""
    ys, xs = np.nonzero(band)
    n = len(ys)
    rh, rw = band.shape
    key = ys.astype(np.int64) * rw + xs
    g = source(ys, xs)
    rows, cols = [], []
    diag = np.zeros(n)
    rhs = np.zeros((n, 3))
    anchored = np.zeros(n, bool)
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        ny, nx = ys + dy, xs + dx
        p = np.nonzero((ny >= 0) & (ny < rh) & (nx >= 0) & (nx < rw))[0]
        qy, qx = ny[p], nx[p]
        diag[p] += 1
        rhs[p] += g[p] - source(qy, qx)
        q_band = band[qy, qx]
        rows.append(p[q_band])
        cols.append(np.searchsorted(key, qy[q_band].astype(np.int64) * rw + qx[q_band]))
        q_in = inner[qy, qx]
        rhs[p[q_in]] += smooth(qy[q_in], qx[q_in])
        known = ~q_band & ~q_in
        rhs[p[known]] += reg[qy[known], qx[known]]
        anchored[p[~q_band]] = True
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    adj = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(n, n))
    _, comp = csgraph.connected_components(adj, directed=False)
    ok = np.zeros(comp.max() + 1, bool)
    ok[comp[anchored]] = True
    free = ~ok[comp]
    keep = ~free[r]  # a pinned pixel's row is the identity: value = source
    a = sp.csc_matrix(
        (np.concatenate([-np.ones(int(keep.sum())), np.where(free, 1.0, diag)]),
         (np.concatenate([r[keep], np.arange(n)]), np.concatenate([c[keep], np.arange(n)]))),
        shape=(n, n),
    )  # fmt: skip
    rhs[free] = g[free]
    return ys, xs, _u8(spla.splu(a).solve(rhs))
