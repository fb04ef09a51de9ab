"""Either model size through every path: a 128-px model completes photos, aligned 89x109 and
178x218 inputs and 64x64 face crops; `batch`, `evaluate`, `sample` and the API take it too."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from skimage import data as skdata

from completion.bundle import save_model
from completion.cli import main
from completion.config import ModelConfig
from completion.imageio import load_rgb
from completion.models import Discriminator, Generator
from completion.photo import Framing, is_face_crop


@pytest.fixture(scope="module", params=[64, 128])
def bundle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight model of each size (width 4: plumbing only)."""
    torch.manual_seed(0)
    cfg = ModelConfig(image_size=request.param, ngf=4, ndf=4)
    path = tmp_path_factory.mktemp(f"m{request.param}") / "m.pt"
    save_model(path, cfg, Generator(cfg).eval(), Discriminator(cfg).eval())
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    Image.fromarray(skdata.astronaut()).save(root / "astronaut.png")
    for w, h in ((89, 109), (178, 218), (64, 64)):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / f"face{w}x{h}.png")
    return root


def run(*args: str) -> None:
    r = CliRunner().invoke(main, ["-q", *args])
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("name", ["astronaut.png", "face89x109.png", "face178x218.png", "face64x64.png"])
def test_complete_keeps_size_and_known_pixels(bundle: Path, inputs: Path, tmp_path: Path, name: str) -> None:
    src = inputs / name
    out = tmp_path / "out.png"
    aligned = ["--aligned"] if "x" in name and "64x64" not in name else []
    run("complete", "--image", str(src), "--mask-type", "eyes", "--out", str(out), "--model", str(bundle),
        "--iterations", "2", *aligned)  # fmt: skip
    a, b = load_rgb(src), load_rgb(out)
    assert a.shape == b.shape
    changed = np.any(a != b, axis=2)
    assert changed.any()
    # Only the eye band moved: nothing in the picture's lowest fifth (mouth and chin or below).
    assert not changed[int(0.8 * a.shape[0]) :].any()


def test_batch_evaluate_and_sample(bundle: Path, inputs: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos"  # a photo to detect the face in, and a face crop
    photos.mkdir()
    for name in ("astronaut.png", "face64x64.png"):
        (photos / name).write_bytes((inputs / name).read_bytes())
    run("batch", "--images", str(photos), "--mask-type", "center", "--out", str(tmp_path / "b"),
        "--model", str(bundle), "--iterations", "1", "--no-progress")  # fmt: skip
    assert len(list((tmp_path / "b").glob("*.png"))) == 2
    faces = tmp_path / "faces"
    faces.mkdir()
    for i in range(3):
        (faces / f"{i}.png").write_bytes((inputs / "face89x109.png").read_bytes())
    run("evaluate", "--images", str(faces), "--model", str(bundle), "--mask-types", "center,eyes",
        "--iterations", "1", "--out", str(tmp_path / "ev"))  # fmt: skip
    assert (tmp_path / "ev").exists()
    run("sample", "--model", str(bundle), "--n", "4", "--out", str(tmp_path / "s.png"))
    size = torch.load(bundle, weights_only=True)["config"]["image_size"]
    w, h = Image.open(tmp_path / "s.png").size
    assert w > 2 * size and h >= size  # a grid of faces at the model's size


def test_face_crops_are_taken_whole() -> None:
    assert is_face_crop(64, 64, 128) and is_face_crop(128, 128, 128) and is_face_crop(100, 100, 100)
    assert not is_face_crop(89, 109, 64) and not is_face_crop(512, 512, 128)
    f = Framing.aligned(64, 64, 128, "center:0.72")
    assert (f.width, f.height, f.cx, f.cy) == (64, 64, 32, 32)


def test_api_completes_a_photo(bundle: Path, inputs: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from completion.bundle import load_model
    from completion.complete import Completer, CompletionOptions
    from completion.serve import create_app

    app = create_app(Completer(load_model(bundle), CompletionOptions(iterations=1)), queue_size=2)
    with TestClient(app) as client:
        image = (inputs / "astronaut.png").read_bytes()
        r = client.post(
            "/api/complete", files={"image": ("a.png", image, "image/png")}, data={"mask_type": "mouth"}
        )
        assert r.status_code == 200, r.text
        out = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))
        assert out.shape == skdata.astronaut().shape
