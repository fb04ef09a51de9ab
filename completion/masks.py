"""Masks: named mask types, mask files, and Yeh et al.'s importance weights.

Convention throughout the library: a mask is a numpy bool array HxW where True = KNOWN pixel and
False = hole (Yeh et al.'s M). Mask *files* follow IOPaint/LaMa by default: white = hole."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .errors import MaskError
from .imageio import load_gray, save_image

# The mask types every evaluation table covers (README, model card, benchmarks, tests).
ALL_MASK_TYPES = (
    "center",
    "left",
    "right",
    "top",
    "bottom",
    "random:0.8",
    "pattern",
    "grid:4",
    "lowres:4",
    "eyes",
    "mouth",
)
MASK_TYPES_HELP = (
    "Mask types: 'center' (hole over the central quarter: rows and cols size/4 to 3*size/4); "
    "'left', 'right', 'top', 'bottom' (that half is the hole; 'half' means 'left'); "
    "'random:F' (each pixel missing independently with probability F, 0<F<1, e.g. random:0.8); "
    "'pattern' (random blobs and brush strokes covering about 25% of the image); "
    "'grid:STEP' (only every STEP-th pixel in both directions is known, STEP>=2); "
    "'lowres:FACTOR' (only a FACTOR-times downsampled image is known: the pixel at the centre of "
    "each FACTORxFACTOR cell, FACTOR>=2); 'eyes' and 'mouth' (a band over the eyes or the mouth of "
    "an aligned face under the canonical crop); 'full' (everything is a hole). "
    "Masks are deterministic for a given type, size and seed."
)

CONVENTIONS = ("white-hole", "black-hole")

_SIMPLE = ("center", "left", "right", "top", "bottom", "pattern", "eyes", "mouth", "full")
_ALIASES = {"half": "left"}

# Bands as (row0, row1, col0, col1) fractions of height/width, chosen from the mean of 50 aligned
# CelebA validation faces (009000.jpg on) under the canonical crop center:0.72 at 64 px. There the
# pupils sit on rows 32-34 (lids 31-35, brows 28-30) and the eyes span cols 17-47; the lips span
# rows 52-57 (the mouth line is row 54) and cols 22-41, with the nostrils on rows 47-49.
# Eyes 0.44-0.60 x 0.20-0.80 -> rows 28-37, cols 13-50 at 64 px (brows to just under the lids).
_EYES = (0.44, 0.60, 0.20, 0.80)
# Mouth 0.78-0.94 x 0.28-0.72 -> rows 50-59, cols 18-45 at 64 px (below the nostrils).
_MOUTH = (0.78, 0.94, 0.28, 0.72)

# 'pattern' stops once the hole share reaches _PATTERN_LO and never lets a shape push it past
# _PATTERN_HI, so every pattern mask is 23-29% hole (about 25% on average).
_PATTERN_LO, _PATTERN_HI = 0.23, 0.29


def _round(x: float) -> int:
    # Half-up rounding: Python's round() is half-to-even, which makes geometry jump oddly by size.
    return int(math.floor(x + 0.5))


def _int_param(kind: str, value: str, spec: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"mask type {spec!r}: {kind} needs an integer, e.g. {kind}:4") from None
    if n < 2:
        raise ValueError(f"mask type {spec!r}: {kind} needs an integer of at least 2")
    return n


def parse_mask_type(spec: str | MaskType) -> str:
    """Validate a mask spec and return it normalised (lower case, aliases resolved)."""
    s = str(spec).strip().lower()
    kind, sep, arg = s.partition(":")
    kind, arg = kind.strip(), arg.strip()
    kind = _ALIASES.get(kind, kind)
    if kind in _SIMPLE:
        if sep:
            raise ValueError(f"mask type {spec!r}: {kind!r} takes no parameter")
        return kind
    if kind == "random":
        try:
            frac = float(arg)
        except ValueError:
            raise ValueError(f"mask type {spec!r}: random needs a fraction, e.g. random:0.8") from None
        if not 0.0 < frac < 1.0:  # also rejects nan
            raise ValueError(f"mask type {spec!r}: random needs a fraction strictly between 0 and 1")
        return f"random:{frac!r}"
    if kind in ("grid", "lowres"):
        return f"{kind}:{_int_param(kind, arg, spec)}"
    choices = ", ".join((*_SIMPLE, "half", "random:F", "grid:STEP", "lowres:FACTOR"))
    raise ValueError(f"unknown mask type {spec!r}; choose from {choices}")


@dataclass(frozen=True)
class MaskType:
    """A generated mask type, validated and normalised once where the user's text enters (CLI,
    server, inputs.load_pair): `MaskType("Eyes").spec == "eyes"`; ValueError for a bad one. The
    completer draws it in each face's frame, so it travels beside image masks (HxW bool)."""

    spec: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "spec", parse_mask_type(self.spec))

    def __str__(self) -> str:
        return self.spec

    @classmethod
    def of(cls, value: object) -> MaskType:
        """`value` itself if already a MaskType (parsed once), else its text parsed (ValueError)."""
        return value if isinstance(value, MaskType) else cls(str(value))


def _band(known: np.ndarray, fracs: tuple[float, float, float, float]) -> None:
    h, w = known.shape
    r0, r1, c0, c1 = fracs
    known[_round(r0 * h) : _round(r1 * h), _round(c0 * w) : _round(c1 * w)] = False


def _pattern(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Filled ellipses and thick brush strokes, added until about a quarter of the image is hole."""
    hole = np.zeros((h, w), np.uint8)
    total = h * w
    lo, hi = math.ceil(_PATTERN_LO * total), math.floor(_PATTERN_HI * total)
    s = math.sqrt(total)  # shape sizes follow the image's scale, also for elongated images
    count, scale = 0, 1.0
    for _ in range(500):
        if count >= lo:
            break
        trial = hole.copy()
        if rng.random() < 0.5:
            centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            axes = (_round(rng.uniform(0.05, 0.16) * s * scale), _round(rng.uniform(0.05, 0.16) * s * scale))
            cv2.ellipse(trial, centre, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1, cv2.LINE_8)
        else:
            n = int(rng.integers(2, 5))
            pts = [np.array([rng.integers(0, w), rng.integers(0, h)], np.float64)]
            for _ in range(n - 1):
                angle = rng.uniform(0, 2 * math.pi)
                step = rng.uniform(0.1, 0.3) * s * scale
                pts.append(pts[-1] + step * np.array([math.cos(angle), math.sin(angle)]))
            poly = np.round(np.stack(pts)).astype(np.int32).reshape(-1, 1, 2)
            thickness = max(1, _round(rng.uniform(0.03, 0.08) * s * scale))
            cv2.polylines(trial, [poly], False, 255, thickness, cv2.LINE_8)
        new = int(np.count_nonzero(trial))
        if new <= hi:
            hole, count = trial, new
        else:
            scale *= 0.8  # too big a shape near the target: try smaller ones
    if count < lo:
        # Tiny images can make every shape overshoot; top up with single pixels to stay in range.
        free = np.flatnonzero(hole.ravel() == 0)
        hole.ravel()[rng.choice(free, lo - count, replace=False)] = 255
    return hole == 0


def make_mask(spec: str | MaskType, height: int, width: int | None = None, seed: int = 0) -> np.ndarray:
    """A known-pixel mask (bool HxW, True = known) for a spec; deterministic in (spec, size, seed).

    Geometry is given as fractions of height/width, rounded half up, so it scales with the size."""
    kind, _, arg = parse_mask_type(spec).partition(":")
    h, w = height, height if width is None else width
    if int(h) != h or int(w) != w or h < 1 or w < 1:
        raise ValueError(f"mask size must be positive integers, got {h}x{w}")
    h, w = int(h), int(w)
    rng = np.random.default_rng(seed)
    known = np.ones((h, w), bool)
    if kind == "center":
        known[_round(h / 4) : _round(3 * h / 4), _round(w / 4) : _round(3 * w / 4)] = False
    elif kind == "left":
        known[:, : _round(w / 2)] = False
    elif kind == "right":
        known[:, _round(w / 2) :] = False
    elif kind == "top":
        known[: _round(h / 2), :] = False
    elif kind == "bottom":
        known[_round(h / 2) :, :] = False
    elif kind == "random":
        known = rng.random((h, w)) >= float(arg)  # P(hole) = F
    elif kind == "pattern":
        known = _pattern(h, w, rng)
    elif kind == "grid":
        step = int(arg)
        known[:] = False
        known[::step, ::step] = True
    elif kind == "lowres":
        # Super-resolution as completion: keep the centre pixel of each FACTORxFACTOR cell (offset
        # FACTOR//2), which is where a box-downsampled pixel's value best belongs, not its corner.
        factor = int(arg)
        known[:] = False
        known[factor // 2 :: factor, factor // 2 :: factor] = True
    elif kind == "eyes":
        _band(known, _EYES)
    elif kind == "mouth":
        _band(known, _MOUTH)
    elif kind == "full":
        known[:] = False
    return np.ascontiguousarray(known)


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown mask convention {convention!r}; choose from {', '.join(CONVENTIONS)}")


def load_mask(
    path: str | Path, height: int, width: int, convention: str = "white-hole", data: bytes | None = None
) -> tuple[np.ndarray, bool]:
    """Read a mask image for an image of height x width; returns (known mask, resized).

    Grey value > 127 is white; under 'white-hole' (IOPaint/LaMa) white marks the hole, under
    'black-hole' black does. A mask of another size but the same aspect ratio (within 2%) is
    resized with nearest neighbour; otherwise MaskError, since stretching would misplace the hole.
    With `data`, the mask is those bytes and `path` only its name."""
    _check_convention(convention)
    grey = load_gray(Path(path), data)
    white = grey > 127
    known = ~white if convention == "white-hole" else white
    mh, mw = known.shape
    if (mh, mw) == (height, width):
        return known, False
    image_ratio, mask_ratio = width / height, mw / mh
    if abs(mask_ratio - image_ratio) / image_ratio > 0.02:
        raise MaskError(f"{path}: mask is {mw}x{mh} but the image is {width}x{height} (aspect ratio differs)")
    resized = cv2.resize(known.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
    return resized.astype(bool), True


def mask_from_alpha(alpha: np.ndarray) -> np.ndarray:
    """Known mask from an alpha channel (HxW uint8): transparent pixels (alpha < 128) are holes."""
    return np.asarray(alpha) >= 128


def mask_to_image(known: np.ndarray, convention: str = "white-hole") -> np.ndarray:
    """uint8 HxW picture of a known mask: under 'white-hole' the hole is 255, known pixels 0."""
    _check_convention(convention)
    known = np.asarray(known, bool)
    white = ~known if convention == "white-hole" else known
    return np.where(white, np.uint8(255), np.uint8(0))


def save_mask(path: str | Path, known: np.ndarray, convention: str = "white-hole") -> None:
    """Write a mask picture atomically; use a lossless format (.png) so it reads back exactly."""
    save_image(Path(path), mask_to_image(known, convention))


def yeh_weights(known: np.ndarray | torch.Tensor, window: int = 7) -> np.ndarray | torch.Tensor:
    """Yeh et al.'s importance weights W: for each known pixel, the fraction of hole pixels in its
    window x window neighbourhood; 0 in the hole. Padding beyond the border counts as known.

    Accepts a torch tensor (N,1,H,W) float with 1 = known (returns float32 of that shape, same
    device) or a numpy HxW mask (returns float32 HxW). As in the paper, a known pixel with no hole in
    its window gets weight 0: it says nothing about the hole, so the contextual loss ignores it."""
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd integer, got {window}")
    if isinstance(known, torch.Tensor):
        if known.dim() != 4 or known.shape[1] != 1:
            raise ValueError(f"expected a (N,1,H,W) tensor, got shape {tuple(known.shape)}")
        k = known.to(torch.float32)
        # Zero padding on the *hole* map means padding is known; count_include_pad keeps the
        # denominator at window**2 everywhere, as in the paper.
        hole_share = F.avg_pool2d(1.0 - k, window, stride=1, padding=window // 2, count_include_pad=True)
        return hole_share * k
    arr = np.asarray(known)
    if arr.ndim != 2:
        raise ValueError(f"expected an HxW mask, got shape {arr.shape}")
    t = torch.from_numpy(arr.astype(np.float32))[None, None]
    return yeh_weights(t, window)[0, 0].numpy()


def hole_depth(known: np.ndarray) -> float:
    """How deep a hole is: the mean distance from a hole pixel to the nearest known pixel, as a
    share of the mask's side (the image border does not count as known). A centred half-size box
    is 0.09, half a face 0.26, scattered pixels ~0.02; no hole is 0, no known pixel 1."""
    hole = ~np.asarray(known, dtype=bool)
    if not hole.any():
        return 0.0
    if hole.all():
        return 1.0
    dist = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 5)
    return float(dist[hole].mean() / max(hole.shape))
