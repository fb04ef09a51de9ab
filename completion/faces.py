"""Finding faces in photos: YuNet boxes and five landmarks, aligned to the training crop.

YuNet (Wu, Peng, Yu 2023; Apache-2.0, completion/assets/yunet/) runs through OpenCV's
cv2.FaceDetectorYN. Each face is framed first by the similarity transform (rotation, uniform
scale, shift) that best maps its five landmarks onto their canonical positions in the model's crop
(CANONICAL, fitted on aligned CelebA training faces by benchmarks/fit_landmarks.py), then moved onto
the training data's own framing by the framer (framer.py), which sees the whole face.

Coordinates: landmarks and boxes are in "edge" coordinates (pixel i covers [i, i+1)), as in photo.py."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from . import framer
from .errors import ImageError
from .photo import Box, Framing, crop_to_model

MODEL_FILE = Path(__file__).resolve().parent / "assets" / "yunet" / "yunet_n_640_640.onnx"

# The five landmarks (the subject's right eye, left eye, nose tip, right and left mouth corner; in
# the picture: left eye first) in the model's canonical crop (center:0.72 of an aligned CelebA
# face), as fractions of the crop's side, edge coordinates. Fitted by benchmarks/fit_landmarks.py:
# the mean over 1798 training faces (every 5th of 000001-009000, YuNet on a 4x upscale, landmarks
# refined as detect_faces does).
CANONICAL = np.array(
    [
        [0.3571, 0.5366],
        [0.6571, 0.5365],
        [0.5053, 0.7184],
        [0.3799, 0.8513],
        [0.6350, 0.8511],
    ]
)
# The framing fits the eyes and mouth corners only: the nose tip moves sideways with the head's
# turn (its spread across training faces is 2.5x the others'), and leaving it out cuts the
# validation error of the crop's centre from 1.9% to 1.7% of its side (benchmarks/fit_landmarks.py).
FIT_POINTS = (0, 1, 3, 4)

# Detection runs on a copy whose long side is at most this (YuNet's cost grows with the pixel
# count; a face still spans dozens of pixels at this scale in any sensible photo).
DETECT_MAX_SIDE = 1280
# OpenCV's sample uses 0.9; 0.6 also finds small and tilted faces, and a spurious "face" matters
# only where a hole falls into its crop.
SCORE_THRESHOLD = 0.6
NMS_THRESHOLD = 0.3
# Landmarks are refined on an upright view of each face, REFINE_SIZE px wide and REFINE_MARGIN
# times its crop's side, and averaged with those of its mirror image: on validation faces pasted
# into canvases this cuts the framing's centre error from 2.0% to 1.6% and its angle error from
# 2.3 to 2.0 degrees (YuNet reads upright faces best, and the mirror cancels its left-right bias).
REFINE_SIZE = 160
REFINE_MARGIN = 1.6
_MIRROR = [1, 0, 2, 4, 3]  # landmark order after a left-right flip
# The framer was trained on crops up to about 20 % off in side, 7.5 % in centre and 10 degrees; a
# correction far beyond that means it is not looking at a face as it knows one (a drawing, a
# mask, a profile), and the landmarks' own framing is kept. Side: |log| of the ratio; shift: a
# fraction of the side; angle: degrees.
MAX_FRAMER_SIDE, MAX_FRAMER_SHIFT, MAX_FRAMER_ANGLE = 0.3, 0.15, 15.0

_local = threading.local()  # a detector per thread: cv2.FaceDetectorYN keeps per-call state


@dataclass(frozen=True)
class Face:
    """A detected face: its box, five landmarks ((5, 2) photo edge coordinates), score, and its
    crop as the framer placed it (None: framed from the landmarks alone)."""

    box: Box
    landmarks: np.ndarray
    score: float
    crop: Framing | None = None

    def framing(self, size: int) -> Framing:
        """The model's S x S crop of this face."""
        if self.crop is None:
            return framing_from_landmarks(self.landmarks, size)
        return replace(self.crop, size=size)


def _detector(width: int, height: int) -> cv2.FaceDetectorYN:
    det = getattr(_local, "detector", None)
    if det is None:
        if not MODEL_FILE.is_file():
            raise ImageError(f"{MODEL_FILE}: the YuNet face detector is missing from the package")
        # OpenCV 5's DNN engine warns on stderr that it ignores the (default) target: silenced, as
        # a user can do nothing about it.
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        try:
            det = cv2.FaceDetectorYN.create(
                str(MODEL_FILE), "", (width, height), SCORE_THRESHOLD, NMS_THRESHOLD, 5000
            )
        except cv2.error as e:
            raise ImageError(f"{MODEL_FILE}: OpenCV cannot load the face detector ({e})") from None
        finally:
            cv2.utils.logging.setLogLevel(level)
        _local.detector = det
    det.setInputSize((width, height))
    return det


def detect_faces(rgb: np.ndarray, refine: bool = True, frame: bool = True) -> list[Face]:
    """Faces in an HxWx3 uint8 RGB image, largest first.

    Photos whose long side exceeds DETECT_MAX_SIDE are searched on a shrunk copy; boxes and
    landmarks are given at the photo's own resolution. With refine, each face's landmarks are
    read again on an upright view of it and its mirror image (see REFINE_SIZE). With frame, the
    framer moves each face's crop onto the training framing (Face.crop)."""
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ImageError("face detection needs an HxWx3 RGB image")
    rgb = np.ascontiguousarray(rgb[..., :3])
    faces = _detect(rgb)
    if refine:
        faces = [Face(f.box, _refine(rgb, f.landmarks), f.score) for f in faces]
    if frame and faces:
        starts = [framing_from_landmarks(f.landmarks, REFINE_SIZE) for f in faces]
        crops = framer.refine(rgb, starts)
        faces = [
            Face(f.box, f.landmarks, f.score, _checked(c, s))
            for f, c, s in zip(faces, crops, starts, strict=True)
        ]
    return faces


def framing_from_box(rgb: np.ndarray, box: Box, size: int, frame: bool = True) -> Framing:
    """The model's crop for a face given by its box (--box): the crop that sits around the box as
    training crops sit around YuNet's boxes (Framing.from_box), moved by the framer onto the
    training framing unless its correction is out of range. A box knows nothing of the face's
    tilt; the framer finds it (YuNet's boxes of 200 validation faces pasted into canvases: angle
    error 7.25 -> 0.95 degrees, side 5.98 -> 2.12 %, centre 4.83 -> 1.73 %; see
    benchmarks/photo_calibration.py)."""
    start = Framing.from_box(box, size)
    if not frame:
        return start
    return _checked(framer.refine(rgb, [start])[0], start) or start


def _checked(crop: Framing, start: Framing) -> Framing | None:
    """The framer's crop, or None where it moved too far from the landmarks' (see MAX_FRAMER_SIDE)."""
    side = abs(math.log(crop.width / start.width))
    shift = math.dist((crop.cx, crop.cy), (start.cx, start.cy)) / start.width
    angle = abs(crop.angle - start.angle)
    if side > MAX_FRAMER_SIDE or shift > MAX_FRAMER_SHIFT or angle > MAX_FRAMER_ANGLE:
        return None
    return crop


def _refine(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Landmarks read on an upright REFINE_SIZE view of the face and its mirror, averaged; the
    first reading where the view shows no face."""
    f = framing_from_landmarks(landmarks, REFINE_SIZE)
    side = f.width * REFINE_MARGIN
    view = Framing(f.cx, f.cy, side, side, f.angle, REFINE_SIZE)
    up = crop_to_model(rgb, view)
    readings = []
    for mirror in (False, True):
        found = _detect(np.ascontiguousarray(up[:, ::-1]) if mirror else up)
        if not found:
            return landmarks
        # The face nearest the view's centre is this one.
        g = min(found, key=lambda q: math.dist(q.box.centre, (REFINE_SIZE / 2, REFINE_SIZE / 2)))
        pts = g.landmarks.copy()
        if mirror:
            pts[:, 0] = REFINE_SIZE - pts[:, 0]
            pts = pts[_MIRROR]
        readings.append(pts)
    # View edge coordinates -> photo edge coordinates (to_photo works on pixel centres).
    return view.to_photo(np.mean(readings, 0) - 0.5) + 0.5


def _detect(rgb: np.ndarray) -> list[Face]:
    h, w = rgb.shape[:2]
    f = min(1.0, DETECT_MAX_SIDE / max(h, w))
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2BGR)
    if f < 1.0:
        bgr = cv2.resize(bgr, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    sh, sw = bgr.shape[:2]
    _, found = _detector(sw, sh).detect(bgr)
    faces = []
    for row in () if found is None else found:
        # YuNet's numbers are pixel-centre coordinates at the detection scale: +0.5 gives edges.
        fx, fy = sw / w, sh / h
        x, y, bw, bh = row[:4]
        box = Box(round(x / fx), round(y / fy), max(1, round(bw / fx)), max(1, round(bh / fy)))
        pts = (row[4:14].reshape(5, 2).astype(np.float64) + 0.5) / [fx, fy]
        faces.append(Face(box, pts, float(row[14])))
    return sorted(faces, key=lambda fc: -fc.box.area)


def similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Least-squares similarity dst ~ s R(theta) src + t (Umeyama, no reflection).

    Returns (s, theta in radians, t)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    p, q = src - ms, dst - md
    norm = float((p**2).sum())
    if norm == 0:
        raise ValueError("landmarks coincide")
    a = float((p * q).sum()) / norm  # s cos(theta)
    b = float((p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0]).sum()) / norm  # s sin(theta)
    s, theta = math.hypot(a, b), math.atan2(b, a)
    rot = np.array([[a, -b], [b, a]])
    return s, theta, md - rot @ ms


def framing_from_landmarks(landmarks: np.ndarray, size: int) -> Framing:
    """The crop whose canonical landmarks best match these photo landmarks (a square, rotated
    with the face)."""
    idx = list(FIT_POINTS)
    s, theta, t = similarity(np.asarray(landmarks)[idx], CANONICAL[idx])
    # Photo point p -> crop fraction u = s R(theta) p + t; the crop's centre is u = (0.5, 0.5).
    c, n = math.cos(theta), math.sin(theta)
    inv_rot = np.array([[c, n], [-n, c]])
    centre = inv_rot @ (np.array([0.5, 0.5]) - t) / s
    side = 1.0 / s
    # Framing.angle is the face's tilt in the photo, the opposite of the rotation that levels it.
    return Framing(float(centre[0]), float(centre[1]), side, side, -math.degrees(theta), size)
