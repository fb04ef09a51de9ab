"""Mask files (--mask), mostly through the CLI: any mode is read and thresholded, a mask of another
size is resized (said once), one of another aspect ratio or a corrupt one is a one-line error, and
masks with no hole or all hole still give an output. (tests/test_masks.py: mask types and load_mask.)"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli, complete, mask_file, one_line_error
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from completion.errors import MaskError
from completion.inputs import load_pair
from completion.masks import load_mask


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


def test_grey_mask_is_thresholded(face: Path, models: dict, tmp_path: Path) -> None:
    m = np.full((64, 64), 100, np.uint8)  # dark grey: known
    m[16:48, 16:48] = 200  # light grey: hole
    mask = mask_file(tmp_path / "grey.png", m)
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
    mask = mask_file(tmp_path / "small.png", m)
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
    mask = mask_file(tmp_path / "wide.png", np.zeros((32, 64)))
    out = tmp_path / "o.png"
    assert "aspect ratio" in one_line_error(complete(face, out, models["64"], "--mask", mask), mask)
    assert not out.exists()


def test_mask_without_hole_gives_the_input(
    face: Path, models: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mask = mask_file(tmp_path / "none.png", np.zeros((64, 64)))
    out = tmp_path / "o.png"
    r = complete(face, out, models["64"], "--mask", mask)
    assert r.exit_code == 0, r.output
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(face)))
    assert any(rec.levelno == logging.WARNING and "no hole" in rec.getMessage() for rec in caplog.records)


@pytest.mark.parametrize("how", ["file", "type"])
def test_all_hole_is_completed_from_the_prior(
    how: str, face: Path, models: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    extra = ["--mask", mask_file(tmp_path / "all.png", np.full((64, 64), 255))] if how == "file" else [
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
