"""`completion prepare`: photos to a training folder of face crops, with rejections named."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from skimage import data as skdata

from completion.cli import main
from completion.faces import detect_faces
from completion.imageio import load_rgb
from completion.photo import Framing
from completion.prepare import REJECTED, outside_share, prepare_folder


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """astronaut (one face), two astronauts side by side, a shrunk astronaut, noise, a broken file."""
    root = tmp_path_factory.mktemp("photos")
    astro = skdata.astronaut()
    Image.fromarray(astro).save(root / "one.jpg", quality=95)
    (root / "sub").mkdir()
    Image.fromarray(np.concatenate([astro, astro[:, ::-1]], 1)).save(root / "sub" / "two.png")
    Image.fromarray(cv2.resize(astro, (160, 160), interpolation=cv2.INTER_AREA)).save(root / "small.png")
    noise = np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    Image.fromarray(cv2.GaussianBlur(noise, (0, 0), 3)).save(root / "noface.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    return root


def test_prepare_writes_the_face_crop_and_names_every_rejection(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "crops"
    report = prepare_folder(photos, out, size=128, progress=False)
    assert report.written == 1 and (out / "one.png").exists()
    crop = load_rgb(out / "one.png")
    assert crop.shape == (128, 128, 3)
    assert report.rejected["several faces"] == ["sub/two.png"]
    assert report.rejected["face too small"] == ["small.png"]
    assert report.rejected["no face"] == ["noface.png"]
    assert report.rejected["unreadable"] == ["broken.jpg"]
    # The crop is the one completion uses for this photo.
    face = detect_faces(load_rgb(photos / "one.jpg"))[0]
    assert abs(report.sides[0] - face.framing(128).width) < 1e-6
    rows = (out / REJECTED).read_text().splitlines()
    assert len(rows) == 4 and all("\t" in r for r in rows)


def test_prepare_resumes_without_redoing_work(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "crops"
    prepare_folder(photos, out, size=64, progress=False)
    before = (out / "one.png").stat().st_mtime_ns
    import completion.prepare as prep

    def no_detection(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("a resumed run looked at a photo again")

    monkeypatch.setattr(prep, "detect_faces", no_detection)
    report = prepare_folder(photos, out, size=64, progress=False)
    assert report.kept == 1 and report.written == 0
    assert (out / "one.png").stat().st_mtime_ns == before
    assert report.n_rejected == 4  # read back from rejected.tsv, still named


def test_min_side_keeps_small_faces_when_asked(photos: Path, tmp_path: Path) -> None:
    report = prepare_folder(photos, tmp_path / "o", size=128, min_side=40, progress=False)
    assert report.written == 2 and not report.rejected["face too small"]


def test_outside_share() -> None:
    assert outside_share(Framing(50, 50, 40, 40, 0.0, 16), 100, 100) == 0.0
    assert abs(outside_share(Framing(0, 50, 40, 40, 0.0, 16), 100, 100) - 0.5) < 0.02


def test_cli_prepare_reports_and_refuses_an_output_inside_the_input(
    photos: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    r = CliRunner().invoke(main, ["prepare", str(photos), "--out", str(tmp_path / "o"), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "1 crops written" in caplog.text and "several faces: 1 (sub/two.png)" in caplog.text
    r = CliRunner().invoke(main, ["prepare", str(photos), "--out", str(photos / "x")])
    assert r.exit_code == 2 and "inside the photo folder" in r.output


def test_aligned_celeba_crops_match_the_canonical_crop(shared_faces: Path, tmp_path: Path) -> None:
    """On aligned validation faces, the detected crop lies where CelebA's own canonical crop is."""
    folder = tmp_path / "faces"
    folder.mkdir()
    for i in range(9001, 9021):
        (folder / f"{i:06d}.jpg").symlink_to(shared_faces / f"{i:06d}.jpg")
    out = tmp_path / "out"
    report = prepare_folder(folder, out, size=64, min_side=1, progress=False)
    assert report.written == 20
    ref = prepare_folder(folder, tmp_path / "ref", size=64, aligned="center:0.72", progress=False)
    assert ref.written == 20
    side_err = np.abs(np.array(report.sides) / 64 - 1)
    assert np.median(side_err) < 0.03
    diffs = [
        np.abs(
            load_rgb(out / f"{i:06d}.png").astype(float) - load_rgb(tmp_path / "ref" / f"{i:06d}.png")
        ).mean()
        for i in range(9001, 9021)
    ]
    assert np.median(diffs) < 12  # grey levels: the same face, framed within a pixel or two
