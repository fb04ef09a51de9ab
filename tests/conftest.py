"""Shared fixtures: a tiny synthetic face folder, a tiny model config, tiny model bundles for CLI
runs, and the real CelebA subset."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from completion.config import ModelConfig

REPO = Path(__file__).resolve().parents[1]
SHARED_FACES = REPO / ".." / "shared" / "datasets" / "celeba_subset" / "img_align_celeba"

# One intra-op thread: the tiny test networks gain nothing from more, and on a machine whose cores
# are busy (a training run) OpenMP threads spin against each other and make steps ~50x slower.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _one_thread_again() -> Iterator[None]:
    """Each test starts and ends on one thread: a CLI command run in-process sets torch's threads
    for the whole process (the cores free when it starts), which would leak into the tests after
    it (a training resumed in-process on two threads after one begun in a subprocess on one is not
    bit-identical to a run on either), and into module fixtures made before the next test's start
    (test_train's straight run, after test_shipped_model's CLI runs)."""
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_faces() -> Path:
    if not SHARED_FACES.is_dir():
        pytest.skip(
            "../shared/datasets/celeba_subset not present (a user's clone has none): real-data test skipped"
        )
    return SHARED_FACES.resolve()


def synthetic_face(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A smooth face-like picture: a skin-toned ellipse, two dark eyes, a mouth, soft random blobs."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy = width / 2 + rng.uniform(-2, 2), height / 2 + rng.uniform(-2, 2)
    background = rng.uniform(40, 200, size=3).astype(np.float32)
    img = np.broadcast_to(background, (height, width, 3)).copy()
    for _ in range(4):  # smooth random blobs
        bx, by = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(3, max(4, width / 3))
        w = np.exp(-((xx - bx) ** 2 + (yy - by) ** 2) / (2 * r * r))[..., None]
        img = img * (1 - 0.5 * w) + 0.5 * w * rng.uniform(0, 255, size=3).astype(np.float32)
    face = ((xx - cx) / (0.32 * width)) ** 2 + ((yy - cy) / (0.42 * height)) ** 2 < 1
    img[face] = np.array([224, 172, 140], np.float32) * rng.uniform(0.7, 1.1)
    for ex in (cx - 0.13 * width, cx + 0.13 * width):
        eye = (xx - ex) ** 2 + (yy - (cy - 0.08 * height)) ** 2 < (0.04 * width + 1) ** 2
        img[eye] = (30, 25, 20)
    mouth = (np.abs(xx - cx) < 0.12 * width) & (np.abs(yy - (cy + 0.18 * height)) < 1.2)
    img[mouth] = (150, 50, 50)
    return np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def tiny_faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 synthetic face images of varying sizes (png, jpg, .JPG, nested folders), plus one corrupt
    'broken.png' and one 'notes.txt': 40 readable images, 1 unreadable."""
    root = tmp_path_factory.mktemp("tiny_faces")
    rng = np.random.default_rng(1234)
    sizes = [(40, 50), (48, 60), (36, 44), (64, 64), (50, 40)]
    for i in range(40):
        w, h = sizes[i % len(sizes)]
        folder = root / ("nested" / Path(f"sub{i % 3}") if i % 5 == 0 else Path("."))
        folder.mkdir(parents=True, exist_ok=True)
        name = f"face_{i:03d}" + (".png", ".jpg", ".JPG", ".jpeg")[i % 4]
        fmt = "PNG" if name.endswith(".png") else "JPEG"
        Image.fromarray(synthetic_face(rng, w, h)).save(folder / name, format=fmt)
    (root / "broken.png").write_bytes(b"\x89PNG not really" + rng.bytes(200))
    (root / "notes.txt").write_text("not an image\n")
    return root


@pytest.fixture
def face(tmp_path: Path) -> Path:
    """A 64x64 noise picture in tmp_path/in/face.png: an input for CLI runs (modules may override)."""
    path = tmp_path / "in" / "face.png"
    path.parent.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def tiny_cfg() -> ModelConfig:
    return ModelConfig(image_size=32, ngf=8, ndf=8)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny random-weight bundles: 64 px (the test images' size) and 32 px."""
    from cli_helpers import tiny_bundle

    d = tmp_path_factory.mktemp("models")
    return {"64": tiny_bundle(d / "m64.pt", 64), "32": tiny_bundle(d / "m32.pt", 32)}


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight 64 px bundle."""
    from cli_helpers import tiny_bundle

    return tiny_bundle(tmp_path_factory.mktemp("models") / "m64.pt")
