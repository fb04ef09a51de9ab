"""Faces in photos of any size: box parsing, framing geometry, YuNet detection and landmark
alignment, every face completed, masks drawn on the face, and paste-back."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import synthetic_face

from completion import photo
from completion.bundle import Model
from completion.complete import Completer, CompletionOptions
from completion.config import ModelConfig
from completion.errors import ImageError, MaskError
from completion.faces import CANONICAL, detect_faces, framing_from_landmarks
from completion.imageio import load_rgb
from completion.masks import ALL_MASK_TYPES, make_mask
from completion.models import Discriminator, Generator
from completion.photo import Box, Framing, center_crop_box, draw_mask_type, parse_box, warp_to_model


def _iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (moved here from photo.Box: only the tests use it)."""
    ix = max(0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    inter = ix * iy
    union = a.area + b.area - inter
    return inter / union if union else 0.0


@pytest.fixture(scope="module")
def random_model() -> Model:
    """An untrained width-8 64 px model: quality does not matter for these tests, only plumbing."""
    torch.manual_seed(0)
    cfg = ModelConfig(image_size=64, ngf=8, ndf=8)
    g, d = Generator(cfg).eval().requires_grad_(False), Discriminator(cfg).eval().requires_grad_(False)
    return Model(cfg, g, d)


def completer(model: Model, **kw: object) -> Completer:
    return Completer(model, CompletionOptions(iterations=2, **kw))


@pytest.fixture(scope="module")
def canvas() -> tuple[np.ndarray, Box]:
    """A 300x240 noise canvas with a synthetic 100x120 face at (150, 60); the face's box."""
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (240, 300, 3), dtype=np.uint8)
    img[60:180, 150:250] = synthetic_face(rng, 100, 120)
    return img, Box(160, 80, 80, 80)


# -- boxes and framing ----------------------------------------------------------------------------


def test_parse_box() -> None:
    assert parse_box("10,20,30,40") == Box(10, 20, 30, 40)
    assert parse_box(" -5, 0 ,7,8 ") == Box(-5, 0, 7, 8)
    for bad in ("1,2,3", "1,2,3,4,5", "a,b,c,d", "1.5,2,3,4", "1,2,0,4", "1,2,3,-4", ""):
        with pytest.raises(ValueError):
            parse_box(bad)


@pytest.mark.parametrize("angle", [0.0, 12.0, -7.5])
def test_framing_round_trip(angle: float) -> None:
    f = Framing.from_box(Box(100, 80, 120, 120), 64, angle)
    pts = np.array([[0.0, 0.0], [160.0, 140.0], [333.3, 12.5]])
    assert np.allclose(f.to_photo(f.to_model(pts)), pts, atol=1e-9)
    # The box centre plus the calibrated offset (rotated with the face) is the model's centre.
    q = f.to_model(np.array([[f.cx - 0.5, f.cy - 0.5]]))[0]
    assert np.allclose(q, [31.5, 31.5])
    # The crop's corners are side apart, and side = CROP_SIDE * box width.
    c = f.corners()
    assert math.isclose(np.linalg.norm(c[1] - c[0]), photo.CROP_SIDE * 120, rel_tol=1e-9)
    assert math.isclose(math.degrees(math.atan2(*(c[1] - c[0])[::-1])), angle, abs_tol=1e-9)


def test_aligned_framing_is_the_training_crop() -> None:
    """--aligned maps an aligned image exactly as training did: center_crop_box, then resize."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (109, 89, 3), dtype=np.uint8)
    f = Framing.aligned(89, 109, 64, "center:0.72")
    x0, y0, side = center_crop_box(89, 109, 0.72)
    assert side == 64
    assert np.allclose(f.matrix, [[1, 0, -x0], [0, 1, -y0]])
    view, known = warp_to_model(img, np.ones((109, 89), bool), f)
    assert np.array_equal(view, img[y0 : y0 + 64, x0 : x0 + 64]) and known.all()
    whole = Framing.aligned(80, 60, 32, "none")
    assert (whole.width, whole.height) == (80, 60)
    # At the model size the image is taken as is, as Completer.prepare does.
    assert np.allclose(Framing.aligned(64, 64, 64, "center:0.72").matrix, [[1, 0, 0], [0, 1, 0]])


@pytest.mark.parametrize(
    ("width", "height", "size", "crop"),
    [(89, 109, 64, "center:0.72"), (178, 218, 64, "center:0.72"), (178, 218, 32, "center:0.72"),
     (178, 218, 64, "none"), (40, 30, 64, "none")],
)  # fmt: skip
def test_one_canonical_crop_for_training_and_photos(width: int, height: int, size: int, crop: str) -> None:
    """Training's crop (data.canonical_crop) and the photo path's view of an aligned image
    (Framing.aligned + warp_to_model, as `complete --aligned` and evaluate take it) are one
    implementation: the same pixels at every input size, and training's the slice it always was."""
    from completion.data import canonical_crop
    from completion.photo import resize

    rng = np.random.default_rng(width + size)
    img = cv2.resize(rng.integers(0, 256, (height // 2, width // 2, 3), dtype=np.uint8), (width, height))
    train = canonical_crop(img, size, crop)
    if crop == "none":
        expected = resize(img, size)
    else:
        x0, y0, side = center_crop_box(width, height, 0.72)
        expected = resize(img[y0 : y0 + side, x0 : x0 + side], size)
    assert np.array_equal(train, expected)
    known = np.ones((height, width), bool)
    known[height // 2 : height // 2 + 9, width // 3 : width // 2] = False
    view, kn = warp_to_model(img, known, Framing.aligned(width, height, size, crop))
    assert np.array_equal(view, train)
    # The hole maps to the model pixels it touches, and every other pixel stays known.
    frame = Framing.aligned(width, height, size, crop)
    ys, xs = np.nonzero(~known)
    q = frame.to_model(np.stack([xs, ys], 1).astype(np.float64))
    assert not kn[np.rint(q[:, 1]).astype(int), np.rint(q[:, 0]).astype(int)].any()
    assert kn.sum() >= size * size - (~known).sum() * (size / frame.width + 2) ** 2


def test_model_mask_is_conservative() -> None:
    """A model pixel is known only if every photo pixel under it is known."""
    h = w = 800
    known = np.ones((h, w), bool)
    known[380, 380] = False  # a single hole pixel in a 10x shrink
    f = Framing(400.0, 400.0, 640.0, 640.0, 7.0, 64)
    _, kn = warp_to_model(np.zeros((h, w, 3), np.uint8), known, f)
    assert 1 <= (~kn).sum() <= 9
    q = f.to_model(np.array([[380.0, 380.0]]))[0]
    assert not kn[round(q[1]), round(q[0])]
    # Crop pixels beyond the photo's edge are unknown too.
    _, kn = warp_to_model(
        np.zeros((h, w, 3), np.uint8), np.ones((h, w), bool), Framing(40.0, 400.0, 640.0, 640.0, 0.0, 64)
    )
    assert not kn[:, :25].any() and kn[:, 30:].all()


# -- completion with a manual box, plumbing only ---------------------------------------------------


@pytest.mark.parametrize("blend", ["poisson", "opencv", "none"])
def test_known_pixels_bit_exact(random_model: Model, canvas, blend: str) -> None:
    img, box = canvas
    known = np.ones(img.shape[:2], bool)
    known[105:125, 165:235] = False  # over the eyes
    out = completer(random_model, blend=blend).complete(img, known, box=box).image
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.array_equal(out[known], img[known])
    assert not np.array_equal(out[~known], img[~known])


def test_large_photo_shrinks_and_keeps_pixels(random_model: Model) -> None:
    """A 1600x1200 photo with a 600 px face: shrunk 10x to the model, pasted back at full size."""
    rng = np.random.default_rng(1)
    img = np.full((1200, 1600, 3), 90, np.uint8)
    img[300:1050, 500:1100] = cv2.resize(
        synthetic_face(rng, 120, 150), (600, 750), interpolation=cv2.INTER_CUBIC
    )
    known = np.ones(img.shape[:2], bool)
    cv2.circle(known.view(np.uint8), (800, 600), 90, 0, -1)
    res = completer(random_model).complete(img, known, box=Box(560, 380, 480, 480))
    assert np.array_equal(res.image[known], img[known])
    assert res.crop.shape == (64, 64, 3) and 0 < (~res.known).sum() < 64 * 64 // 4


def test_hole_outside_face(random_model: Model, canvas) -> None:
    img, box = canvas
    known = np.ones(img.shape[:2], bool)
    known[200:230, 10:40] = False  # bottom-left corner, far from the face
    with pytest.raises(MaskError, match="outside every face"):
        completer(random_model).complete(img, known, box=box)


def test_hole_bigger_than_face(random_model: Model, canvas) -> None:
    img, box = canvas
    known = np.zeros(img.shape[:2], bool)
    known[:5] = True
    with pytest.raises(MaskError, match="bigger than the face"):
        completer(random_model).complete(img, known, box=box)


def test_mask_size_mismatch(random_model: Model, canvas) -> None:
    img, box = canvas
    with pytest.raises(MaskError, match="mask is"):
        completer(random_model).complete(img, np.ones((10, 10), bool), box=box)


def test_no_face(random_model: Model) -> None:
    img = np.random.default_rng(2).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    known = np.ones(img.shape[:2], bool)
    known[100:140, 100:160] = False
    assert detect_faces(img) == []
    with pytest.raises(ImageError, match=r"noise\.png: no face found.*--box x,y,w,h.*--aligned"):
        completer(random_model).complete(img, known, name="noise.png")


def test_hole_partly_outside_crop_is_inpainted(random_model: Model, canvas, caplog) -> None:
    img, box = canvas
    f = Framing.from_box(box, 64)
    right = math.ceil(f.corners()[:, 0].max())
    img = img.copy()
    known = np.ones(img.shape[:2], bool)
    known[150:170, right - 30 : right + 20] = False  # straddles the crop's right edge
    img[~known] = 255  # a white sticker: no part of it may survive
    with caplog.at_level(logging.WARNING, logger="completion.complete"):
        out = completer(random_model).complete(img, known, box=box).image
    assert any(
        "outside every face crop" in r.getMessage() and "inpainting" in r.getMessage() for r in caplog.records
    )
    assert np.array_equal(out[known], img[known])
    outside = ~known & ~f.inside(0, 0, img.shape[1], img.shape[0])
    assert outside.any() and (out[outside] != 255).any(axis=-1).all()


def test_no_hole_returns_input(random_model: Model, canvas) -> None:
    img, _ = canvas
    out = completer(random_model).complete(img, np.ones(img.shape[:2], bool)).image
    assert np.array_equal(out, img)


def test_aligned_input(random_model: Model) -> None:
    rng = np.random.default_rng(3)
    img = synthetic_face(rng, 89, 109)
    known = np.ones((109, 89), bool)
    known[45:60, 20:70] = False
    out = completer(random_model).complete(img, known, aligned=True).image
    assert np.array_equal(out[known], img[known]) and out.shape == img.shape


# -- real faces ---------------------------------------------------------------------------------


def paste(
    face: np.ndarray, scale: float, angle: float, size: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Paste face scaled and rotated into a size x size gradient+noise canvas; returns the canvas and
    the 2x3 edge-coordinate affine from face to canvas."""
    rng = np.random.default_rng(seed)
    fh, fw = face.shape[:2]
    t = math.radians(angle)
    rot = scale * np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    off = np.array([size / 2, size / 2]) + rng.uniform(-20, 20, 2) - rot @ [fw / 2, fh / 2]
    centre = np.hstack([rot, (rot @ [0.5, 0.5] + off - 0.5)[:, None]])
    ramp = np.linspace(0, 1, size)
    bg = rng.uniform(0, 255, 3) * ramp[:, None, None] + rng.uniform(0, 255, 3) * ramp[None, :, None]
    bg = np.clip(bg / 2 + rng.normal(0, 20, (size, size, 3)), 0, 255)
    warped = cv2.warpAffine(
        face, centre, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    alpha = cv2.warpAffine(np.ones((fh, fw), np.float32), centre, (size, size))[..., None]
    canvas = np.clip(np.rint(alpha * warped + (1 - alpha) * bg), 0, 255).astype(np.uint8)
    return canvas, np.hstack([rot, off[:, None]])


def pasted_crop(face_shape: tuple[int, int], edge: np.ndarray) -> tuple[float, float, float]:
    """Centre and side of the face's canonical crop in the canvas."""
    fh, fw = face_shape
    x0, y0, side = center_crop_box(fw, fh, 0.72)
    cx, cy = edge[:, :2] @ [x0 + side / 2, y0 + side / 2] + edge[:, 2]
    return cx, cy, side * math.hypot(edge[0, 0], edge[1, 0])


def real_faces(shared_faces: Path) -> list[np.ndarray]:
    return [load_rgb(shared_faces / f"{i:06d}.jpg") for i in (9001, 9101, 9201)]


def test_detects_pasted_real_faces(shared_faces: Path) -> None:
    """Validation faces at 3x, rotated 10 degrees, in 400x400 canvases: the landmark framing lands
    on the pasted face's canonical crop (centre within 6% of its side, side within 15%, angle
    within 6 degrees: CelebA's own crops differ from face to face by about that much), and the box
    overlaps the one the box mapping expects."""
    for i, face in enumerate(real_faces(shared_faces)):
        canvas, edge = paste(face, 3.0, 10.0, 400, seed=i)
        cx, cy, side = pasted_crop(face.shape[:2], edge)
        faces = detect_faces(canvas)
        assert len(faces) == 1, f"face {i}: {len(faces)} detected"
        f = faces[0].framing(64)
        assert math.hypot(f.cx - cx, f.cy - cy) < 0.06 * side, (f, cx, cy, side)
        assert abs(f.width / side - 1) < 0.15 and abs(f.angle - 10.0) < 6.0, f
        bw = side / photo.CROP_SIDE
        bx, by = cx - photo.CROP_DX * bw, cy - photo.CROP_DY * bw
        expected = Box(round(bx - bw / 2), round(by - bw / 2), round(bw), round(bw))
        assert _iou(faces[0].box, expected) > 0.5, (faces[0].box, expected)


def test_completes_pasted_real_face(random_model: Model, shared_faces: Path) -> None:
    """Detection path end to end: an eyes hole drawn at canvas resolution, known pixels untouched."""
    face = real_faces(shared_faces)[0]
    canvas, edge = paste(face, 3.0, -8.0, 400, seed=7)
    fh, fw = face.shape[:2]
    x0, y0, side = center_crop_box(fw, fh, 0.72)
    rows, cols = np.nonzero(~make_mask("eyes", side))
    rect = np.array(
        [[cols.min(), rows.min()], [cols.max() + 1, rows.min()], [cols.max() + 1, rows.max() + 1]]
    )
    rect = np.vstack([rect, [[cols.min(), rows.max() + 1]]]) + [x0, y0]
    poly = rect @ edge[:, :2].T + edge[:, 2] - 0.5
    hole = np.zeros(canvas.shape[:2], np.uint8)
    cv2.fillPoly(hole, [np.round(poly).astype(np.int32)], 255)
    known = hole == 0
    res = completer(random_model).complete(canvas, known, name="pasted")
    assert np.array_equal(res.image[known], canvas[known])
    cx, cy, side = pasted_crop(face.shape[:2], edge)
    assert math.hypot(res.framing.cx - cx, res.framing.cy - cy) < 0.25 * side
    assert abs(res.framing.width / side - 1) < 0.25


def test_hole_outside_every_detected_face(random_model: Model, shared_faces: Path) -> None:
    face = real_faces(shared_faces)[1]
    canvas, _ = paste(face, 3.0, 0.0, 400, seed=3)
    known = np.ones(canvas.shape[:2], bool)
    known[2:20, 2:20] = False  # a canvas corner
    with pytest.raises(MaskError, match="outside every face found"):
        completer(random_model).complete(canvas, known, name="corner")


# -- landmarks, every face, masks drawn on the face --------------------------------------------------


@pytest.mark.parametrize(("scale", "angle"), [(1.0, 0.0), (3.7, 12.0), (0.6, -20.0)])
def test_landmark_framing_recovers_a_similarity(scale: float, angle: float) -> None:
    """Landmarks that are the canonical ones under a known similarity give back exactly that crop."""
    side = 64 * scale
    t = math.radians(angle)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    centre = np.array([200.0, 150.0])
    pts = (CANONICAL - 0.5) * side @ rot.T + centre
    f = framing_from_landmarks(pts, 64)
    assert (
        np.allclose([f.cx, f.cy], centre)
        and math.isclose(f.width, side)
        and math.isclose(f.angle, angle, abs_tol=1e-9)
    )
    # The landmarks land on their canonical model pixels.
    assert np.allclose(f.to_model(pts - 0.5), CANONICAL * 64 - 0.5)


def test_generated_mask_is_drawn_in_the_model_frame() -> None:
    """At scale 1 and an integer offset the warped mask is make_mask's, shifted; rotated and scaled,
    the hole stays inside the crop and has about the crop's share of hole."""
    f = Framing.aligned(89, 109, 64, "center:0.72")
    x0, y0, _ = center_crop_box(89, 109, 0.72)
    for spec in ("eyes", "random:0.8", "left", "full"):
        known = draw_mask_type(spec, [f], 109, 89, seed=3)
        assert np.array_equal(known[y0 : y0 + 64, x0 : x0 + 64], make_mask(spec, 64, 64, seed=3))
        known[y0 : y0 + 64, x0 : x0 + 64] = True
        assert known.all()
    g = Framing(300.0, 200.0, 192.0, 192.0, 15.0, 64)
    known = draw_mask_type("mouth", [g], 400, 600)
    assert not (~known & ~g.inside(0, 0, 600, 400)).any()
    share = (~known).sum() / g.area
    assert abs(share - (~make_mask("mouth", 64)).mean()) < 0.01


def two_faces(shared_faces: Path) -> tuple[np.ndarray, list[tuple[float, float, float]]]:
    """Two validation faces, 3x, side by side on a 600x400 canvas; their canonical crops."""
    a, b = (load_rgb(shared_faces / f"{i:06d}.jpg") for i in (9011, 9212))
    canvas = np.full((400, 600, 3), 120, np.uint8)
    crops = []
    for face, x in ((a, 30), (b, 320)):
        big = cv2.resize(face, (267, 327), interpolation=cv2.INTER_CUBIC)
        canvas[40:367, x : x + 267] = big
        edge = np.array([[3.0, 0, x], [0, 3.0, 40]])
        crops.append(pasted_crop(face.shape[:2], edge))
    return canvas, crops


def test_two_faces_both_completed(random_model: Model, shared_faces: Path, caplog) -> None:
    """Holes over both mouths: both faces go through the model in one batch, the log names them."""
    canvas, crops = two_faces(shared_faces)
    calls = []
    c = completer(random_model)
    optimise = c.optimise
    c.optimise = lambda y, m, *a, **k: calls.append(len(y)) or optimise(y, m, *a, **k)  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="completion.complete"):
        res = c.complete(canvas, "mouth", name="two")
    assert calls == [2] and len(res.faces) == 2 and res.outside == 0
    known = res.hole_known
    assert np.array_equal(res.image[known], canvas[known])
    changed = (res.image != canvas).any(2)
    for (cx, cy, side), fr in zip(sorted(crops), sorted(res.faces, key=lambda f: f.framing.cx), strict=True):
        assert math.hypot(fr.framing.cx - cx, fr.framing.cy - cy) < 0.06 * side
        ys, xs = np.nonzero(changed[:, round(cx - side / 2) : round(cx + side / 2)])
        # The mouth band: the lower fifth of the crop, its middle.
        assert ys.min() > cy + 0.2 * side and ys.max() < cy + 0.5 * side and len(ys) > 500
    msg = " ".join(r.getMessage() for r in caplog.records)
    assert "completed 2 face(s)" in msg and "box" in msg
    # A hand-drawn mask over both mouths: also both faces.
    res2 = c.complete(canvas, res.hole_known, name="two")
    assert len(res2.faces) == 2 and res2.outside == 0


def test_pick_one_face(random_model: Model, shared_faces: Path, caplog) -> None:
    """--face N: only that face goes through the model; the other's hole is filled classically."""
    canvas, _ = two_faces(shared_faces)
    c = completer(random_model)
    known = c.complete(canvas, "mouth").hole_known
    with caplog.at_level(logging.WARNING, logger="completion.complete"):
        res = c.complete(canvas, known, face=2)
    assert len(res.faces) == 1 and 0 < res.outside < (~known).sum()
    assert np.array_equal(res.image[known], canvas[known]) and (res.image[~known] != canvas[~known]).any()
    assert any("outside every face crop" in r.getMessage() for r in caplog.records)
    with pytest.raises(MaskError, match="face 3 asked for, but 2 found"):
        c.complete(canvas, known, face=3)


# Where scikit-image's astronaut (public domain) has her eyes and mouth, by eye: (x, y) pixels.
ASTRONAUT_EYES = ((204, 104), (248, 105))
ASTRONAUT_MOUTH = (224, 145)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data")
    return skimage_data.astronaut()


@pytest.mark.parametrize("spec", ["eyes", "mouth"])
def test_astronaut_eyes_and_mouth(random_model: Model, astronaut: np.ndarray, spec: str) -> None:
    """--mask-type eyes changes her eyes and nothing near the mouth; mouth the other way round."""
    res = completer(random_model).complete(astronaut, spec, name="astronaut")
    changed = (res.image != astronaut).any(2)
    ys, xs = np.nonzero(changed)
    hole = ~res.hole_known
    assert len(res.faces) == 1 and res.outside == 0
    assert not (changed & ~hole).any() and changed.sum() > 0.95 * hole.sum()
    inside = [ASTRONAUT_EYES, [ASTRONAUT_MOUTH]][spec == "mouth"]
    away = [[ASTRONAUT_MOUTH], ASTRONAUT_EYES][spec == "mouth"]
    for x, y in inside:
        assert xs.min() < x < xs.max() and ys.min() < y < ys.max(), (spec, (x, y))
    for x, y in away:
        assert not changed[y - 8 : y + 9, x - 8 : x + 9].any(), (spec, (x, y))
    # A band over the face, not the picture: well inside her head's width.
    assert xs.min() > 170 and xs.max() < 275


def test_aligned_cli_equals_evaluate(tmp_path: Path, shared_faces: Path) -> None:
    """All 11 mask types: `complete --aligned --mask-type T` on an 89x109 CelebA face gives the
    numbers `evaluate` reports for the same face (same crop, same hole, same result)."""
    from click.testing import CliRunner

    from completion.bundle import load_model, save_model
    from completion.cli import main
    from completion.evaluate import evaluate
    from completion.metrics import psnr, ssim

    torch.manual_seed(0)
    cfg = ModelConfig(image_size=64, ngf=8, ndf=8)
    bundle = tmp_path / "tiny.pt"
    save_model(bundle, cfg, Generator(cfg).eval(), Discriminator(cfg).eval())
    src = shared_faces / "009005.jpg"
    face = load_rgb(src)
    assert face.shape == (109, 89, 3)
    x0, y0, side = center_crop_box(89, 109, 0.72)
    truth = face[y0 : y0 + side, x0 : x0 + side]
    c = Completer(load_model(bundle), CompletionOptions(iterations=3))
    report = evaluate(c, [face], ALL_MASK_TYPES, baselines=False, progress=False)
    for row, spec in zip(report.rows, ALL_MASK_TYPES, strict=True):
        out = tmp_path / f"{spec.replace(':', '_')}.png"
        args = ["complete", "--image", str(src), "--aligned", "--mask-type", spec, "--out", str(out)]
        r = CliRunner().invoke(main, [*args, "--model", str(bundle), "--iterations", "3"])
        assert r.exit_code == 0, (spec, r.output)
        got = load_rgb(out)
        hole = ~make_mask(spec, 64, 64, seed=0)
        outside = np.ones((109, 89), bool)
        outside[y0 : y0 + side, x0 : x0 + side] = False
        assert np.array_equal(got[outside], face[outside]), spec  # only the crop's hole changes
        mine = got[y0 : y0 + side, x0 : x0 + side]
        assert (row.psnr, row.psnr_hole, row.ssim) == (
            psnr(truth, mine),
            psnr(truth, mine, hole),
            ssim(truth, mine),
        ), spec


def test_batch_draws_generated_masks_on_the_face(
    random_model: Model, astronaut: np.ndarray, tmp_path: Path
) -> None:
    """`batch --mask-type mouth` on a folder of photos: her mouth, not the picture's bottom band."""
    from completion.batch import pair_files, run_batch
    from completion.imageio import save_image

    save_image(tmp_path / "in" / "astronaut.png", astronaut)
    jobs, _ = pair_files(tmp_path / "in")
    rep = run_batch(completer(random_model), jobs, tmp_path / "out", 4, mask_type="mouth", progress=False)
    assert rep.done == 1
    changed = (load_rgb(tmp_path / "out" / "astronaut.png") != astronaut).any(2)
    ys, xs = np.nonzero(changed)
    x, y = ASTRONAUT_MOUTH
    assert xs.min() < x < xs.max() and ys.min() < y < ys.max() and ys.max() < 175 and xs.min() > 170


@pytest.mark.parametrize("side", [150.0, 64.0], ids=["shrunk", "same-size"])
@pytest.mark.parametrize("spec", ["lowres:4", "grid:4", "random:0.8"])
def test_scattered_known_pixels_survive_the_warp(spec: str, side: float) -> None:
    """A scattered mask drawn on a tilted face (as `--mask-type` draws it in a photo): few model
    pixels are wholly known, yet the view keeps those at least a tenth known, valued from known
    photo pixels alone (hole pixels set to 255 do not show); a contiguous hole keeps the strict
    rule (a model pixel is known only if every photo pixel under it is)."""
    framing = Framing(100.0, 100.0, side, side, 12.0, 64)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 100, (200, 200, 3), dtype=np.uint8)
    known = draw_mask_type(spec, [framing], 200, 200)
    image[~known] = 255
    view, kn = warp_to_model(image, known, framing)
    drawn = make_mask(spec, 64, 64)
    assert kn.mean() > 0.5 * drawn.mean()  # the strict rule keeps almost none here
    assert view[kn].max() < 100  # no trace of the hole's 255
    box = draw_mask_type("center", [framing], 200, 200)
    _, strict = warp_to_model(image, box, framing)
    assert strict.mean() < make_mask("center", 64, 64).mean()
