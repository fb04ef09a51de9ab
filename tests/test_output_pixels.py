"""What an output holds: the pixels outside the hole (exactly where the format allows), the input's
metadata (ICC profile, EXIF, dpi) and mode (grey stays grey); --quality for JPEG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli, one_line
from click.testing import CliRunner
from PIL import Image

from completion.bundle import save_model
from completion.cli import main
from completion.config import ModelConfig
from completion.masks import make_mask
from completion.models import Discriminator, Generator


def _photo_with_metadata(path: Path) -> Path:
    """A 64x64 PNG with an sRGB ICC profile, EXIF (camera make, orientation 6 = turn 90 degrees) and
    300 dpi."""
    from PIL import ImageCms

    path.parent.mkdir(parents=True, exist_ok=True)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "TestCam"  # Make
    exif[0x0112] = 6
    rgb = np.random.default_rng(5).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    rgb[:, :8] = 0  # a dark band on the left: after the EXIF turn it lies along the top
    Image.fromarray(rgb).save(path, icc_profile=icc, exif=exif.tobytes(), dpi=(300, 300))
    return path


@pytest.mark.parametrize("suffix", [".png", ".webp", ".jpg", ".tif"])
def test_outputs_keep_pixels_and_metadata(suffix: str, model: Path, tmp_path: Path) -> None:
    from completion.imageio import load_rgb
    from completion.masks import make_mask

    src = _photo_with_metadata(tmp_path / "in" / "photo.png")
    out = tmp_path / f"o{suffix}"
    one_line(cli("complete", "--image", src, "--mask-type", "center", "--out", out, "--model", model,
                 "--iterations", "1"), 0)  # fmt: skip
    before, after = load_rgb(src), load_rgb(out)
    assert before[:8].max() == 0  # the orientation was applied on reading
    known = make_mask("center", 64, 64)
    diff = np.abs(before.astype(int) - after.astype(int))[known]
    if suffix == ".jpg":
        # Quality 95, 4:4:4: on this noise (JPEG's worst case) well under Pillow's default 75, 4:2:0.
        Image.fromarray(before).save(tmp_path / "default.jpg")
        worst = np.abs(before.astype(int) - load_rgb(tmp_path / "default.jpg").astype(int))[known]
        assert diff.mean() < 0.3 * worst.mean() and diff.max() < 0.5 * worst.max(), (diff.max(), worst.max())
    else:
        assert diff.max() == 0  # bit-identical outside the hole
    with Image.open(src) as a, Image.open(out) as b:
        assert b.info.get("icc_profile") == a.info["icc_profile"]
        exif = b.getexif()
        assert exif.get(0x010F) == "TestCam" and exif.get(0x0112, 1) == 1  # upright now
        if suffix != ".webp":
            assert round(float(b.info["dpi"][0])) == 300


def test_quality_option(model: Path, tmp_path: Path) -> None:
    src = _photo_with_metadata(tmp_path / "in" / "photo.png")
    sizes = {}
    for q in ("30", "95"):
        out = tmp_path / f"o{q}.jpg"
        one_line(cli("complete", "--image", src, "--mask-type", "center", "--out", out, "--model", model,
                     "--iterations", "1", "--quality", q), 0)  # fmt: skip
        sizes[q] = out.stat().st_size
    assert sizes["30"] < sizes["95"]
    one_line(cli("complete", "--image", src, "--mask-type", "center", "--out", tmp_path / "x.jpg",
                 "--model", model, "--quality", "0"), 2)  # fmt: skip
    assert not (tmp_path / "x.jpg").exists()


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
