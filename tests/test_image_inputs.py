"""Image files as inputs: whatever comes in, one clear line (exit 1) and no half-written output; any
format and mode Pillow decodes is taken (16-bit scaled, EXIF orientation applied, alpha as the hole
only without a mask); a decompression bomb is refused before decoding. Mostly through the CLI."""

from __future__ import annotations

import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli, complete, leftovers, mask_file, one_line_error
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from completion import imageio
from completion.errors import ImageError
from completion.imageio import load_gray, load_rgb
from completion.inputs import load_pair
from completion.masks import MaskType

# -- bad images ------------------------------------------------------------------------------------


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


# -- formats and modes -----------------------------------------------------------------------------


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
        # Grey sources come back grey (8-bit); colour ones, whatever their layout, as RGB; with a
        # mask type, transparency is kept (issue 22).
        grey = "L" if mode in ("L", "I;16", "1") else "LA" if mode == "LA" else None
        assert im.size == (64, 64) and im.mode == (grey or ("RGBA" if mode == "RGBA" else "RGB"))


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
    assert known == MaskType("left")  # drawn on each face by the completer
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
    r = complete(path, out, models["32"], "--aligned", "--mask", mask_file(tmp_path / "m.png", hole))
    assert r.exit_code == 0, r.output
    with Image.open(out) as im:
        assert im.size == (20, 40)


# -- property-based: any size, mode and content ----------------------------------------------------


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
