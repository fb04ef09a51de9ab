"""Hardening: whatever comes in, one clear line (exit 1 for the work, 2 for usage), no traceback, no
half-written output, and no code run from a file. Mostly through the CLI, as a user meets it."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from completion import imageio
from completion.bundle import FORMAT, read_file, save_model
from completion.cli import main
from completion.config import ModelConfig
from completion.errors import ImageError, MaskError
from completion.imageio import load_gray, load_rgb
from completion.inputs import load_pair
from completion.masks import load_mask, make_mask
from completion.models import Discriminator, Generator

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# -- fixtures and helpers ---------------------------------------------------------------------------


def _bundle(path: Path, size: int) -> Path:
    torch.manual_seed(0)
    cfg = ModelConfig(image_size=size, ngf=8, ndf=8)
    save_model(path, cfg, Generator(cfg).eval(), Discriminator(cfg).eval())
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny random-weight bundles: 64 px (the test images' size) and 32 px."""
    d = tmp_path_factory.mktemp("models")
    return {"64": _bundle(d / "m64.pt", 64), "32": _bundle(d / "m32.pt", 32)}


def cli(*args: object):  # noqa: ANN201
    return CliRunner().invoke(main, [str(a) for a in args])


def complete(image: Path, out: Path, model: Path, *extra: object):  # noqa: ANN201
    extra = extra if any(str(e).startswith("--mask") for e in extra) else ("--mask-type", "center", *extra)
    return cli("complete", "--image", image, "--out", out, "--model", model, "--iterations", "1", *extra)


def one_line_error(r, *names: object) -> str:  # noqa: ANN001
    """Exit 1 with exactly one 'error: ...' line on stderr naming every given file; no traceback."""
    assert r.exit_code == 1, (r.exit_code, r.output, r.exception)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: "), r.stderr
    for n in names:
        assert str(n) in lines[0], (n, lines[0])
    assert "Traceback" not in r.output
    return lines[0]


def leftovers(folder: Path) -> list[str]:
    """Temp files an atomic write would leave behind (.<name>.XXXX.tmp)."""
    return [p.name for p in folder.rglob("*") if p.name.endswith(".tmp")] if folder.exists() else []


def png_bomb(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit PNG of width x height, all black, a few hundred KB at most: written row by row
    with zlib so that making it costs no memory (Pillow would hold all the pixels)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    block = row * 1000
    idat = []
    for start in range(0, height, 1000):
        idat.append(comp.compress(block if height - start >= 1000 else row * (height - start)))
    idat.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(idat)) + chunk(b"IEND", b"")
    )
    return path


# -- images ------------------------------------------------------------------------------------------


def _bad_image(kind: str, folder: Path, face: Path) -> Path:
    jpg = folder / "face.jpg"
    Image.open(face).save(jpg, quality=95)
    files = {
        "empty": lambda p: p.write_bytes(b""),
        "truncated-jpeg": lambda p: p.write_bytes(jpg.read_bytes()[: jpg.stat().st_size // 2]),
        "truncated-png": lambda p: p.write_bytes(face.read_bytes()[: face.stat().st_size // 2]),
        "text-named-png": lambda p: p.write_text("this is not an image\n"),
        "bomb": lambda p: png_bomb(p, 30000, 30000),
        "missing": lambda p: None,
        "folder": lambda p: p.mkdir(),
    }
    suffix = ".jpg" if kind == "truncated-jpeg" else ".png"
    path = folder / f"{kind}{suffix}"
    files[kind](path)
    return path


@pytest.mark.parametrize(
    "kind, message",
    [
        ("empty", "empty file"),
        ("truncated-jpeg", "truncated"),
        ("truncated-png", "truncated"),
        ("text-named-png", "not a readable image"),
        ("bomb", "refused before decoding"),
        ("missing", "no such file"),
        ("folder", "is a folder"),
    ],
)
def test_bad_image_is_one_line(kind: str, message: str, face: Path, models: dict, tmp_path: Path) -> None:
    bad = _bad_image(kind, tmp_path, face)
    out = tmp_path / "out" / "x.png"
    line = one_line_error(complete(bad, out, models["64"]), bad)
    assert message in line
    assert not out.exists() and not leftovers(tmp_path)


def test_bomb_is_small_and_refused_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """30000x30000 (over Pillow's own bomb limit: its DecompressionBombError is caught) and
    12000x12000 (under Pillow's limit, over MAX_PIXELS): both refused, and nothing decoded."""
    big = png_bomb(tmp_path / "big.png", 30000, 30000)
    mid = png_bomb(tmp_path / "mid.png", 12000, 12000)
    assert big.stat().st_size < 200_000 and mid.stat().st_size < 50_000
    assert imageio.MAX_PIXELS < 12000 * 12000

    def no_decoding(self, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    for path, size in ((big, "900,000,000 pixels"), (mid, "12000x12000")):
        for loader in (load_rgb, load_gray):
            with pytest.raises(ImageError, match="refused before decoding") as info:
                loader(path)
            assert size in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("fmt", ["TIFF", "GIF", "WEBP", "BMP"])
def test_any_format_pillow_decodes_is_accepted(fmt: str, face: Path, models: dict, tmp_path: Path) -> None:
    path = tmp_path / f"face.{fmt.lower()}"
    Image.open(face).save(path, format=fmt)
    out = tmp_path / "out.png"
    r = complete(path, out, models["64"])
    assert r.exit_code == 0, r.output
    with Image.open(out) as im:
        assert im.size == (64, 64) and im.mode == "RGB"


def _in_mode(rgb: np.ndarray, mode: str) -> tuple[Image.Image, str]:
    img = Image.fromarray(rgb)
    if mode == "I;16":
        return Image.fromarray(rgb[..., 0].astype(np.uint16) * 257), "PNG"
    if mode == "CMYK":
        return img.convert("CMYK"), "JPEG"
    if mode == "P":
        return img.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"
    return img.convert(mode), "PNG"


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "I;16", "CMYK", "1", "LA"])
def test_image_modes_through_the_cli(mode: str, face: Path, models: dict, tmp_path: Path) -> None:
    img, fmt = _in_mode(np.asarray(Image.open(face)), mode)
    path = tmp_path / f"face_{mode.replace(';', '')}.{'jpg' if fmt == 'JPEG' else 'png'}"
    img.save(path, format=fmt)
    out = tmp_path / "out.png"
    r = complete(path, out, models["64"])
    assert r.exit_code == 0, r.output
    with Image.open(out) as im:
        # Grey sources come back grey (8-bit); colour ones, whatever their layout, as RGB.
        assert im.size == (64, 64) and im.mode == ("L" if mode in ("L", "I;16", "1", "LA") else "RGB")


def test_sixteen_bit_is_scaled_not_clipped(tmp_path: Path) -> None:
    a = np.array([[0, 256, 32768, 65535]], np.uint16)
    Image.fromarray(a).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as im:
        assert im.mode.startswith("I")
    rgb = load_rgb(tmp_path / "g16.png")
    assert rgb[0, :, 0].tolist() == [0, 1, 128, 255] and (rgb == rgb[..., :1]).all()


def test_rgba_alpha_is_the_hole_only_without_a_mask(tmp_path: Path) -> None:
    rgba = np.full((32, 32, 4), 200, np.uint8)
    rgba[8:16, 8:16, 3] = 0  # transparent square
    Image.fromarray(rgba).save(tmp_path / "a.png")
    _, known = load_pair(tmp_path / "a.png")
    assert (~known).sum() == 64 and not known[8:16, 8:16].any()
    _, known = load_pair(tmp_path / "a.png", mask_type="left")
    assert known == "left"  # drawn on each face by the completer
    m = np.zeros((32, 32), np.uint8)
    m[0, 0] = 255
    Image.fromarray(m).save(tmp_path / "m.png")
    image, known = load_pair(tmp_path / "a.png", mask_path=tmp_path / "m.png")
    assert (~known).sum() == 1 and image.shape == (32, 32, 3)


def test_opaque_image_without_mask_is_one_line(face: Path, models: dict, tmp_path: Path) -> None:
    r = cli("complete", "--image", face, "--out", tmp_path / "o.png", "--model", models["64"])
    assert "no transparency" in one_line_error(r, face)


def test_exif_orientation_is_applied(face: Path, models: dict, tmp_path: Path) -> None:
    wide = np.zeros((20, 40, 3), np.uint8)
    wide[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    Image.fromarray(wide).save(path, exif=exif.tobytes(), quality=95)
    with Image.open(path) as im:
        assert im.size == (40, 20)  # stored wide
    rgb = load_rgb(path)
    assert rgb.shape == (40, 20, 3)  # shown tall
    assert rgb[:20].mean() > 200 and rgb[20:].mean() < 50  # the white half is now on top
    assert load_gray(path).shape == (40, 20)
    hole = np.zeros((40, 20), np.uint8)
    hole[18:22, 8:12] = 255  # a mask drawn on the image as shown: 20 wide, 40 tall
    out = tmp_path / "out.png"
    r = complete(path, out, models["32"], "--aligned", "--mask", _mask_file(tmp_path / "m.png", hole))
    assert r.exit_code == 0, r.output
    with Image.open(out) as im:
        assert im.size == (20, 40)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads files despite chmod 000")
def test_unreadable_file(face: Path, models: dict, tmp_path: Path) -> None:
    face.chmod(0)
    try:
        line = one_line_error(complete(face, tmp_path / "o.png", models["64"]), face)
        assert "permission denied" in line
    finally:
        face.chmod(0o644)


def test_file_where_a_folder_is_expected(face: Path, models: dict, tmp_path: Path) -> None:
    r = cli("batch", "--images", face, "--out", tmp_path / "out", "--mask-type", "center",
            "--model", models["64"], "--iterations", "1", "--no-progress")  # fmt: skip
    assert "is not a folder" in one_line_error(r, face)
    r = cli("train", "--data", face, "--out", tmp_path / "run", "--image-size", "32", "--ngf", "8",
            "--ndf", "8", "--batch-size", "2", "--no-progress", "--device", "cpu")  # fmt: skip
    assert "is not a folder" in one_line_error(r, face)


# -- property-based: any size, mode and content --------------------------------------------------

MODES = ["L", "P", "RGB", "RGBA", "I;16", "CMYK"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    w=st.integers(1, 48),
    h=st.integers(1, 48),
    mode=st.sampled_from(MODES),
    seed=st.integers(0, 2**32 - 1),
    flat=st.booleans(),
)
def test_load_rgb_any_mode(w: int, h: int, mode: str, seed: int, flat: bool) -> None:
    rng = np.random.default_rng(seed)
    rgb = (
        np.full((h, w, 3), rng.integers(0, 256), np.uint8)
        if flat
        else rng.integers(0, 256, (h, w, 3), np.uint8)
    )
    img, fmt = _in_mode(rgb, mode)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / ("x.jpg" if fmt == "JPEG" else "x.png")
        img.save(path, format=fmt)
        out = load_rgb(path)
        assert out.shape == (h, w, 3) and out.dtype == np.uint8
        if mode == "RGB":
            assert np.array_equal(out, rgb)
        elif mode == "L":
            assert np.array_equal(out, np.repeat(np.asarray(img)[..., None], 3, axis=2))
        elif mode == "I;16":
            assert np.array_equal(out[..., 0], rgb[..., 0])  # 257 * v scales back to v exactly


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    w=st.integers(1, 40),
    h=st.integers(1, 40),
    scale=st.sampled_from([1, 2, 3]),
    mode=st.sampled_from(["L", "1", "P", "RGB", "RGBA", "I;16"]),
    seed=st.integers(0, 2**32 - 1),
    convention=st.sampled_from(["white-hole", "black-hole"]),
)
def test_load_mask_any_mode(w: int, h: int, scale: int, mode: str, seed: int, convention: str) -> None:
    grey = np.random.default_rng(seed).integers(0, 256, (h, w), np.uint8)
    img = (
        Image.fromarray(grey.astype(np.uint16) * 257)
        if mode == "I;16"
        else Image.fromarray(grey).convert(mode)
    )
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.png"
        img.save(path)
        known, resized = load_mask(path, h * scale, w * scale, convention)
        assert known.dtype == bool and known.shape == (h * scale, w * scale)
        assert resized == (scale != 1)
        if mode in ("L", "I;16") and scale == 1:
            assert np.array_equal(known, (grey <= 127) if convention == "white-hole" else (grey > 127))
        if w != h:  # the transposed size has another aspect ratio
            with pytest.raises(MaskError, match="aspect ratio"):
                load_mask(path, w * 4, h * 4, convention)


# -- masks -------------------------------------------------------------------------------------------


def _mask_file(path: Path, arr: np.ndarray) -> Path:
    Image.fromarray(arr.astype(np.uint8)).save(path)
    return path


def test_grey_mask_is_thresholded(face: Path, models: dict, tmp_path: Path) -> None:
    m = np.full((64, 64), 100, np.uint8)  # dark grey: known
    m[16:48, 16:48] = 200  # light grey: hole
    mask = _mask_file(tmp_path / "grey.png", m)
    _, known = load_pair(face, mask)
    assert np.array_equal(known, m <= 127)
    out = tmp_path / "o.png"
    assert complete(face, out, models["64"], "--mask", mask).exit_code == 0
    res, src = np.asarray(Image.open(out)), np.asarray(Image.open(face))
    assert np.array_equal(res[m <= 127], src[m <= 127])


def test_mask_of_other_size_is_resized_and_said_once(
    face: Path, models: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    m = np.zeros((32, 32), np.uint8)
    m[8:24, 8:24] = 255
    mask = _mask_file(tmp_path / "small.png", m)
    caplog.set_level(logging.INFO)
    r = complete(face, tmp_path / "o.png", models["64"], "--mask", mask)
    assert r.exit_code == 0, r.output
    assert sum("resized" in rec.getMessage() for rec in caplog.records) == 1
    # A batch sharing the mask says it once too, not once per image.
    for i in range(3):
        Image.open(face).save(face.parent / f"more{i}.png")
    caplog.clear()
    r = cli("batch", "--images", face.parent, "--out", tmp_path / "out", "--mask", mask,
            "--model", models["64"], "--iterations", "1", "--no-progress")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "out").glob("*.png"))) == 4
    assert sum("resized" in rec.getMessage() for rec in caplog.records) <= 1


def test_mask_of_other_aspect_ratio_is_an_error(face: Path, models: dict, tmp_path: Path) -> None:
    mask = _mask_file(tmp_path / "wide.png", np.zeros((32, 64)))
    out = tmp_path / "o.png"
    assert "aspect ratio" in one_line_error(complete(face, out, models["64"], "--mask", mask), mask)
    assert not out.exists()


def test_mask_without_hole_gives_the_input(
    face: Path, models: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mask = _mask_file(tmp_path / "none.png", np.zeros((64, 64)))
    out = tmp_path / "o.png"
    r = complete(face, out, models["64"], "--mask", mask)
    assert r.exit_code == 0, r.output
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(face)))
    assert any(rec.levelno == logging.WARNING and "no hole" in rec.getMessage() for rec in caplog.records)


@pytest.mark.parametrize("how", ["file", "type"])
def test_all_hole_is_completed_from_the_prior(
    how: str, face: Path, models: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    extra = ["--mask", _mask_file(tmp_path / "all.png", np.full((64, 64), 255))] if how == "file" else [
        "--mask-type", "full"]  # fmt: skip
    out = tmp_path / "o.png"
    r = complete(face, out, models["64"], *extra)
    assert r.exit_code == 0, r.output
    with Image.open(out) as im:
        assert im.size == (64, 64)
    assert any(rec.levelno == logging.WARNING and "prior alone" in rec.getMessage() for rec in caplog.records)


def test_corrupt_mask_file(face: Path, models: dict, tmp_path: Path) -> None:
    mask = tmp_path / "bad_mask.png"
    mask.write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 10)
    one_line_error(complete(face, tmp_path / "o.png", models["64"], "--mask", mask), mask)
    # The same shared mask for a batch: the run's error, said once.
    r = cli("batch", "--images", face.parent, "--out", tmp_path / "out", "--mask", mask,
            "--model", models["64"], "--iterations", "1", "--no-progress")  # fmt: skip
    one_line_error(r, mask)
    assert not (tmp_path / "out").exists()


# -- model files ---------------------------------------------------------------------------------------


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (os.system, (f"touch {self.marker}",))


def _bad_model(kind: str, folder: Path, good: Path) -> Path:
    path = folder / f"{kind}.pt"
    if kind == "missing":
        return path
    if kind == "corrupt":
        path.write_bytes(np.random.default_rng(1).bytes(5000))
    elif kind == "truncated":
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind in ("older", "newer"):
        obj = read_file(good, "model")
        obj["version"] = 0 if kind == "older" else 99
        torch.save(obj, path)
    elif kind == "foreign":
        torch.save({"state_dict": {"w": torch.zeros(3)}}, path)
    elif kind == "mismatched":
        obj = read_file(good, "model")
        obj["config"]["ngf"] = 16
        torch.save(obj, path)
    return path


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing", "no such model file"),
        ("corrupt", "corrupt or truncated"),
        ("truncated", "corrupt or truncated"),
        ("empty", "corrupt or truncated"),
        ("older", "version 0 is not supported"),
        ("newer", "version 99 is not supported"),
        ("foreign", "not a dcgan-completion model"),
        ("mismatched", "does not match"),
    ],
)
def test_bad_model_file(kind: str, message: str, face: Path, models: dict, tmp_path: Path) -> None:
    bad = _bad_model(kind, tmp_path, models["64"])
    out = tmp_path / "o.png"
    assert message in one_line_error(complete(face, out, bad), bad)
    assert not out.exists()


def test_code_in_a_model_file_never_runs(face: Path, tmp_path: Path) -> None:
    marker = (tmp_path / "PWNED").resolve()
    evil = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "kind": "model", "version": 1, "meta": Payload(marker)}, evil)
    for args in (
        ("complete", "--image", face, "--mask-type", "center", "--out", tmp_path / "o.png", "--model", evil),
        ("sample", "--model", evil, "--out", tmp_path / "g.png"),
        ("export", evil, "--out", tmp_path / "e.pt"),
    ):
        line = one_line_error(cli(*args), evil)
        assert "refused" in line and "nothing was run" in line
    assert not marker.exists()
    # Control: unpickled without restriction, the same payload does run.
    import pickle

    pickle.loads(pickle.dumps(Payload(marker)))  # noqa: S301 - deliberate
    assert marker.exists()


def test_model_of_another_size(face: Path, models: dict, tmp_path: Path) -> None:
    """A 32 px model and an 80x80 image: not a face crop (square at a model size), so it is taken
    as a photo; with no face in it that is a clear error pointing at --aligned, and with --aligned
    it goes the canonical way (resized to 32, completed, pasted back at 80) leaving every known
    pixel as it was. A 64x64 image is a face crop of the 64-px model: taken whole by the 32-px one."""
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (80, 80, 3), dtype=np.uint8)).save(photo)
    out = tmp_path / "o.png"
    line = one_line_error(complete(photo, out, models["32"]), photo)
    assert "--aligned" in line and not out.exists()
    for src_path, side, extra in ((photo, 80, ("--aligned",)), (face, 64, ())):
        r = complete(src_path, out, models["32"], *extra)
        assert r.exit_code == 0, r.output
        res, src = np.asarray(Image.open(out)), np.asarray(Image.open(src_path))
        known = make_mask("center", side, side)
        assert res.shape == (side, side, 3) and np.array_equal(res[known], src[known])
        assert not np.array_equal(res[~known], src[~known])


# -- outputs -------------------------------------------------------------------------------------------


def test_never_overwrites_an_input(face: Path, models: dict, tmp_path: Path) -> None:
    before = face.read_bytes()
    r = complete(face, face, models["64"])
    assert r.exit_code == 2 and "overwrite" in r.stderr
    ckpt = tmp_path / "run" / "checkpoint.pt"
    r = cli("export", ckpt, "--out", ckpt)
    assert r.exit_code == 2 and "overwrite the checkpoint" in r.stderr
    # batch with --out = --images: face.png would be its own output, so that item fails.
    other = face.parent / "other.jpg"
    Image.open(face).save(other)
    r = cli("batch", "--images", face.parent, "--out", face.parent, "--mask-type", "center",
            "--model", models["64"], "--iterations", "1", "--no-progress")  # fmt: skip
    assert r.exit_code == 1 and "face.png" in r.stderr and "is an input file" in r.stderr
    assert face.read_bytes() == before and (face.parent / "other.png").exists()
    # A shared mask file in the output folder is an input too.
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    Image.open(face).save(imgs / "m.png")
    mask = tmp_path / "out" / "m.png"
    _mask_file(mask.parent.mkdir() or mask, make_mask("center", 64, 64) * 255)
    mask_bytes = mask.read_bytes()
    r = cli("batch", "--images", imgs, "--out", tmp_path / "out", "--mask", mask,
            "--model", models["64"], "--iterations", "1", "--no-progress", "--overwrite")  # fmt: skip
    assert r.exit_code == 1 and "is an input file" in r.stderr
    assert mask.read_bytes() == mask_bytes


def test_missing_folders_are_created(face: Path, models: dict, tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "c" / "o.png"
    assert complete(face, out, models["64"]).exit_code == 0
    assert out.exists() and not leftovers(tmp_path)
    assert oct(out.stat().st_mode & 0o777) != oct(0o600)  # an ordinary file, not mkstemp's 0600


@pytest.mark.parametrize("command", ["complete", "sample", "masks", "batch", "export"])
def test_unwritable_output_folder(command: str, face: Path, models: dict, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder is needed")
    out = blocker / "sub" / "o.png"
    if command == "complete":
        r = complete(face, out, models["64"])
    elif command == "sample":
        r = cli("sample", "--model", models["64"], "--n", "1", "--out", out)
    elif command == "masks":
        r = cli("masks", "--type", "center", "--out", out)
    elif command == "export":
        r = cli("export", tmp_path / "missing_run", "--out", out)
        one_line_error(r, tmp_path / "missing_run")
        return
    else:
        r = cli("batch", "--images", face.parent, "--out", blocker / "sub", "--mask-type", "center",
                "--model", models["64"], "--iterations", "1", "--no-progress")  # fmt: skip
        assert r.exit_code == 1 and "is a file, not a folder" in r.stderr
        return
    assert "is a file, not a folder" in one_line_error(r, out, blocker)
    assert blocker.read_text() == "a file where a folder is needed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "in"]


def test_full_disk_leaves_no_partial_file(
    face: Path, models: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer fails half way with ENOSPC: one line, the old output untouched, no temp file."""
    out = tmp_path / "out" / "o.png"
    out.parent.mkdir()
    out.write_bytes(b"previous result")

    def full(self, fp, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        Path(fp).write_bytes(b"\x89PNG half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Image.Image, "save", full)
    line = one_line_error(complete(face, out, models["64"]), out)
    assert "No space left on device" in line
    assert out.read_bytes() == b"previous result" and not leftovers(tmp_path)
    # Model bundles go through the same writer.
    monkeypatch.setattr(torch, "save", lambda obj, f, *a, **k: full(None, f))
    one_line_error(cli("train-encoder", "--model", models["64"], "--data", face.parent, "--steps", "1",
                       "--batch-size", "2", "--out", tmp_path / "enc.pt", "--device", "cpu",
                       "--no-progress"), tmp_path / "enc.pt")  # fmt: skip
    assert not (tmp_path / "enc.pt").exists() and not leftovers(tmp_path)


# -- options -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--iterations", "-1"],
        ["--lam", "-0.1"],
        ["--lam", "nan"],
        ["--lr", "inf"],
        ["--restarts", "0"],
        ["--mask-type", "bogus"],
        ["--mask-type", "random:1.5"],
        ["--box", "1,2,3"],
        ["--box", "500,500,10,10"],
        ["--box", "-80,0,40,40"],
    ],
)
def test_complete_bad_options_exit_2(args: list[str], face: Path, models: dict, tmp_path: Path) -> None:
    base = ["complete", "--image", face, "--out", tmp_path / "o.png", "--model", models["64"]]
    if "--mask-type" not in args:
        base += ["--mask-type", "center"]
    r = cli(*base, *args)
    assert r.exit_code == 2, (r.output, r.exception)
    assert "Traceback" not in r.output and not (tmp_path / "o.png").exists()
    if args[0] == "--box" and args[1].count(",") == 3:
        assert "outside the 64x64 image" in r.stderr


@pytest.mark.parametrize("shard", ["1/x", "2/2", "-1/2", "foo", "1"])
def test_batch_bad_shard_exit_2(shard: str, face: Path, models: dict, tmp_path: Path) -> None:
    r = cli("batch", "--images", face.parent, "--out", tmp_path / "o", "--mask-type", "center",
            "--model", models["64"], "--shard", shard)  # fmt: skip
    assert r.exit_code == 2 and "--shard" in r.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["masks", "--type", "center", "--size", "0", "--out", "m.png"],
        ["masks", "--type", "center", "--size", "1000000", "--out", "m.png"],
        ["masks", "--type", "grid:1", "--out", "m.png"],
        ["sample", "--n", "0", "--out", "g.png"],
        ["train", "--data", ".", "--out", "run", "--lr", "nan"],
        ["train", "--data", ".", "--out", "run", "--epochs", "0"],
        ["train", "--data", ".", "--out", "run", "--label-smoothing", "0.9"],
    ],
)
def test_other_bad_options_exit_2(args: list[str], tmp_path: Path) -> None:
    r = cli(*[str(tmp_path / a) if a in ("m.png", "g.png", "run") else a for a in args])
    assert r.exit_code == 2, r.output
    assert not any(tmp_path.iterdir())


# -- conventions: one line for every command, tracebacks only with --debug ---------------------------


def test_every_command_answers_in_one_line(tmp_path: Path, face: Path) -> None:
    missing = tmp_path / "missing.pt"
    for args in (
        ("sample", "--model", missing, "--out", tmp_path / "g.png"),
        ("export", missing, "--out", tmp_path / "e.pt"),
        ("evaluate", "--images", tmp_path / "nope", "--model", missing),
        ("train-encoder", "--model", missing, "--data", face.parent, "--out", tmp_path / "e.pt"),
        (
            "complete",
            "--image",
            face,
            "--mask-type",
            "center",
            "--out",
            tmp_path / "o.png",
            "--model",
            missing,
        ),
        (
            "batch",
            "--images",
            face.parent,
            "--mask-type",
            "center",
            "--out",
            tmp_path / "b",
            "--model",
            missing,
        ),
        ("train", "--out", tmp_path / "run", "--resume", "--data", tmp_path / "nope"),
    ):
        one_line_error(cli(*args))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_debug_shows_the_traceback(face: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing.pt"
    r = cli("--debug", "sample", "--model", missing, "--out", tmp_path / "g.png")
    assert r.exit_code == 1 and type(r.exception).__name__ == "ModelFileError"
    p = subprocess.run([sys.executable, "-m", "completion", "--debug", "sample", "--model", str(missing),
                        "--out", str(tmp_path / "g.png")], capture_output=True, text=True, env=ENV,
                       timeout=120)  # fmt: skip
    assert p.returncode == 1 and "Traceback" in p.stderr and "ModelFileError" in p.stderr


def test_bugs_are_not_hidden(
    face: Path, models: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only CompletionError becomes a one-line message: a genuine bug still surfaces as itself."""
    import completion.inputs

    def bug(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(completion.inputs, "load_pair", bug)
    r = complete(face, tmp_path / "o.png", models["64"])
    assert r.exit_code == 1 and isinstance(r.exception, ZeroDivisionError)


# -- interruptions ---------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _interrupt(cmd: list[str], ready, timeout: float = 240) -> subprocess.CompletedProcess:  # noqa: ANN001
    """Start cmd, wait until ready(proc) says it is at work, send SIGINT, and collect it."""
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None and not ready(proc):
            time.sleep(0.05)
        assert proc.poll() is None, "ended before it could be interrupted: " + proc.communicate()[1]
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert took < 30, f"took {took:.1f} s to stop"
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _interrupted(p: subprocess.CompletedProcess) -> None:
    assert p.returncode == 130, p.stderr
    assert "Traceback" not in p.stderr and p.stderr.strip().splitlines()[-1] == "interrupted", p.stderr


def test_ctrl_c_during_complete(face: Path, models: dict, tmp_path: Path) -> None:
    out = tmp_path / "out" / "o.png"
    cmd = [sys.executable, "-m", "completion", "complete", "--image", str(face), "--mask-type", "center",
           "--out", str(out), "--model", str(models["64"]), "--iterations", "10000000"]  # fmt: skip
    # Importing torch takes about 3 CPU seconds: past 6 the optimisation is running.
    _interrupted(_interrupt(cmd, lambda proc: _cpu_seconds(proc.pid) > 6))
    assert not out.exists() and not leftovers(tmp_path)


def _importing_torch(proc: subprocess.Popen) -> bool:
    try:
        return "libtorch" in Path(f"/proc/{proc.pid}/maps").read_text()
    except OSError:
        return False


def test_ctrl_c_while_importing_torch(face: Path, models: dict, tmp_path: Path) -> None:
    """Ctrl-C in the seconds before the CLI is loaded still gives the one-line "interrupted"."""
    exe = shutil.which("completion", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the `completion` entry point is not installed")
    out = tmp_path / "o.png"
    cmd = [exe, "complete", "--image", str(face), "--mask-type", "center", "--out", str(out),
           "--model", str(models["64"])]  # fmt: skip
    _interrupted(_interrupt(cmd, _importing_torch))
    assert not out.exists()


def test_ctrl_c_during_batch_then_resume(models: dict, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    images, out = tmp_path / "images", tmp_path / "out"
    expected = set()
    for i in range(16):
        rel = f"d{i % 2}/img{i:02d}.png"
        (images / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(images / rel)
        expected.add(rel)
    args = ["batch", "--images", str(images), "--out", str(out), "--mask-type", "center",
            "--model", str(models["64"]), "--iterations", "100", "--batch-size", "2",
            "--no-progress"]  # fmt: skip
    p = _interrupt(
        [sys.executable, "-m", "completion", *args],
        lambda proc: out.exists() and any(q.suffix == ".png" for q in out.rglob("*")),
    )
    _interrupted(p)
    done = {q.relative_to(out).as_posix() for q in out.rglob("*.png")}
    assert done and done < expected and not leftovers(out)
    for rel in done:  # whatever was written is whole
        with Image.open(out / rel) as im:
            im.load()
    report = tmp_path / "r.json"
    r = cli(*args, "--report", report)
    assert r.exit_code == 0, r.output
    assert {q.relative_to(out).as_posix() for q in out.rglob("*.png")} == expected and not leftovers(out)
    rep = json.loads(report.read_text())
    assert rep["skipped_existing"] == len(done) and rep["done"] == len(expected) - len(done)


def test_ctrl_c_during_train_then_resume(tiny_faces: Path, tmp_path: Path) -> None:
    """Interrupted training writes a consistent checkpoint (the step in progress is finished first);
    resuming from it gives bit for bit the weights of a run that was never interrupted."""
    run = tmp_path / "run"
    tiny = ["--image-size", "32", "--ngf", "8", "--ndf", "8", "--batch-size", "8", "--device", "cpu",
            "--no-progress", "--checkpoint-minutes", "0"]  # fmt: skip
    cmd = [sys.executable, "-m", "completion", "train", "--data", str(tiny_faces), "--out", str(run),
           "--epochs", "100000", *tiny]  # fmt: skip
    p = _interrupt(cmd, lambda proc: (run / "checkpoint.pt").exists())
    _interrupted(p)
    assert "--resume" in p.stderr
    state = read_file(run / "checkpoint.pt", "checkpoint")["state"]
    assert state["epoch"] >= 1 and not leftovers(run)
    target = state["epoch"] + 1
    r = cli("train", "--out", run, "--resume", "--epochs", target, "--no-progress")
    assert r.exit_code == 0, r.output
    resumed = read_file(run / "checkpoint.pt", "checkpoint")
    assert resumed["state"]["epoch"] == target

    straight = tmp_path / "straight"
    r = cli("train", "--data", tiny_faces, "--out", straight, "--epochs", target, *tiny)
    assert r.exit_code == 0, r.output
    ref = read_file(straight / "checkpoint.pt", "checkpoint")
    assert resumed["state"]["images_seen"] == ref["state"]["images_seen"]
    for k, v in ref["generator"].items():
        assert torch.equal(resumed["generator"][k], v), k


def test_grey_input_gives_grey_output(tmp_path: Path) -> None:
    """A grey photo comes back grey, its known pixels unchanged (the output keeps the input's mode)."""
    cfg = ModelConfig(image_size=32, ngf=8, ndf=8)
    model = tmp_path / "m.pt"
    save_model(model, cfg, Generator(cfg), Discriminator(cfg))
    grey = (np.arange(32 * 32).reshape(32, 32) % 251).astype(np.uint8)
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    out = tmp_path / "o.png"
    r = CliRunner().invoke(main, ["complete", "--image", str(tmp_path / "g.png"), "--mask-type", "center",
                                  "--out", str(out), "--model", str(model), "--iterations", "1"])  # fmt: skip
    assert r.exit_code == 0, r.output
    result = Image.open(out)
    assert result.mode == "L"
    known = make_mask("center", 32)
    assert np.array_equal(np.asarray(result)[known], grey[known])
