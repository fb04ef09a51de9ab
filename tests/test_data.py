"""Finding images, the canonical crop, decoding, and the per-epoch order and DDP shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from completion.data import FaceData, canonical_crop, decode_all, select_files
from completion.errors import DataError, ImageError
from completion.imageio import list_images
from completion.photo import center_crop_box, resize


def test_list_images_recursive_case_insensitive(tiny_faces: Path) -> None:
    files = list_images(tiny_faces)
    names = {p.name for p in files}
    assert len(files) == 41  # 40 faces + broken.png
    assert "notes.txt" not in names
    assert "broken.png" in names
    assert any(p.suffix == ".JPG" for p in files)
    assert any(p.parent != tiny_faces for p in files)  # nested subfolders are searched
    assert files == sorted(files)


def test_list_images_errors(tmp_path: Path) -> None:
    with pytest.raises(ImageError):
        list_images(tmp_path / "missing")
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(ImageError):
        list_images(tmp_path / "a.txt")
    with pytest.raises(DataError):
        select_files(tmp_path)


def test_training_walks_folders_as_batch_does(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Training's listing and batch share one walker: links to folders followed once, every
    other path named and counted, the same images in the same sorted order."""
    import logging

    from completion.batch import pair_files

    data = tmp_path / "data"
    (data / "b").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for p in (data / "a.png", data / "b" / "c.jpg", elsewhere / "d.png"):
        p.write_bytes(b"")  # the walker only lists; nothing is decoded
    (data / "notes.txt").write_text("x")
    (data / "linked").symlink_to(elsewhere, target_is_directory=True)
    (data / "again").symlink_to(elsewhere, target_is_directory=True)  # a second way: listed once
    with caplog.at_level(logging.INFO, logger="completion.data"):
        files = select_files(data)
    rel = [f.relative_to(data).as_posix() for f in files]
    assert rel == ["a.png", "again/d.png", "b/c.jpg"]
    jobs, failures = pair_files(data)
    assert [j.rel for j in jobs] == rel
    ignored = {f.rel for f in failures if f.status == "ignored"}
    assert ignored == {"notes.txt", "linked"}
    assert "ignored 2 other paths" in caplog.text
    assert "notes.txt: not an image file" in caplog.text and "linked: links to" in caplog.text


def test_select_files_offset_limit(tiny_faces: Path) -> None:
    all_files = select_files(tiny_faces)
    assert select_files(tiny_faces, offset=5, limit=10) == all_files[5:15]


def test_center_crop_box_celeba() -> None:
    x0, y0, side = center_crop_box(89, 109, 0.72)
    assert side == 64
    assert (x0, y0) == ((89 - 64) // 2, (109 - 64) // 2)
    assert center_crop_box(178, 218, 0.72)[2] == 128
    assert center_crop_box(100, 50, 1.0)[2] == 50  # never larger than the image


def test_canonical_crop_none_only_resizes() -> None:
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, 20:] = 255  # left half black, right half white
    out = canonical_crop(img, 16, "none")
    assert out.shape == (16, 16, 3)
    assert np.array_equal(out, resize(img, 16))
    # The whole width survives (squashed), so both halves are present.
    assert out[:, :6].max() < 30 and out[:, -6:].min() > 225
    cropped = canonical_crop(img, 16, "center:0.5")  # centred 20x20 square straddles the edge
    assert cropped.shape == (16, 16, 3)


def test_facedata_skips_corrupt(tiny_faces: Path) -> None:
    data = FaceData(select_files(tiny_faces), 32, "center:0.72")
    assert data.skipped == 1
    assert len(data) == 40
    assert data.cache is not None
    assert data.cache.shape == (40, 3, 32, 32) and data.cache.dtype == torch.uint8


def test_epoch_order_deterministic_and_sharded(tiny_faces: Path) -> None:
    data = FaceData(select_files(tiny_faces), 32, "none")
    a, b = data.epoch_order(3, 1), data.epoch_order(3, 1)
    assert torch.equal(a, b)
    assert sorted(a.tolist()) == list(range(len(data)))
    assert not torch.equal(a, data.epoch_order(3, 2))
    assert not torch.equal(a, data.epoch_order(4, 1))
    for world in (2, 3):
        shards = [data.epoch_order(3, 1, rank, world) for rank in range(world)]
        assert {len(s) for s in shards} == {len(data) // world}
        seen = [i for s in shards for i in s.tolist()]
        assert len(seen) == len(set(seen))  # disjoint


def test_batches_full_and_resumable(tiny_faces: Path) -> None:
    data = FaceData(select_files(tiny_faces), 32, "none")
    order = data.epoch_order(0, 0)
    batches = list(data.batches(order, 8))
    assert len(batches) == 5 and all(b.shape == (8, 3, 32, 32) for b in batches)
    later = list(data.batches(order, 8, start=3))
    assert len(later) == 2 and torch.equal(later[0], batches[3])


def test_streaming_drops_unreadable(tiny_faces: Path) -> None:
    files = select_files(tiny_faces)
    streamed = FaceData(files, 32, "center:0.72", cache_max_bytes=0, workers=0)
    assert streamed.cache is None and len(streamed) == 41
    order = streamed.epoch_order(0, 0)
    used = order[:40].tolist()  # five full batches of 8
    broken = [i for i, p in enumerate(files) if p.name == "broken.png"]
    expected = 40 - sum(i in used for i in broken)
    batches = list(streamed.batches(order, 8))
    assert sum(len(b) for b in batches) == expected
    assert all(b.dtype == torch.uint8 and b.shape[1:] == (3, 32, 32) for b in batches)


def test_decode_real_faces(shared_faces: Path) -> None:
    files = select_files(shared_faces, limit=20)
    images, skipped = decode_all(files, 64, "center:0.72")
    assert skipped == 0
    assert images.shape == (20, 3, 64, 64) and images.dtype == torch.uint8
    assert images.float().std() > 20  # real pictures, not blank
