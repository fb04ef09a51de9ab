"""What batch takes from its folders: with a separate --masks folder every file under --images is an
image (no LaMa naming rule); any format complete takes, symlinks followed, and every path it leaves
out named in the log and the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli, png
from PIL import Image


def test_separate_masks_folder_has_no_lama_naming_rule(tmp_path: Path) -> None:
    from completion.batch import pair_files

    images, masks = tmp_path / "images", tmp_path / "masks"
    png(images / "portrait.png")
    png(images / "portrait_masked.png")  # a photo, not portrait.png's mask
    png(images / "solo_mask.png")  # a photo with no mask of its own: counted as a failure
    png(masks / "portrait.png", 255)
    png(masks / "portrait_masked.png", 255)
    jobs, failures = pair_files(images, masks)
    assert [(j.rel, j.mask, j.output) for j in jobs] == [
        ("portrait.png", masks / "portrait.png", "portrait.png"),
        ("portrait_masked.png", masks / "portrait_masked.png", "portrait_masked.png"),
    ]
    assert [(f.rel, f.error) for f in failures] == [("solo_mask.png", "no mask found")]
    # --masks = --images is LaMa's layout, where the rule applies.
    jobs, failures = pair_files(images, images)
    assert [(j.rel, j.mask.name) for j in jobs] == [("portrait.png", "portrait_masked.png")]


def test_batch_names_every_path_it_leaves_out(model: Path, tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    import json
    import os

    images, elsewhere = tmp_path / "images", tmp_path / "elsewhere"
    rgb = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    images.mkdir()
    Image.fromarray(rgb).save(images / "scan.tif")
    Image.fromarray(rgb).convert("P").save(images / "anim.gif")
    png(images / "plain.png")
    png(elsewhere / "linked.png")
    os.symlink(elsewhere, images / "linked_folder")  # followed
    os.symlink(images, images / "loop")  # a second way into the images folder: named, not walked
    os.symlink(tmp_path / "gone.png", images / "dangling.png")
    (images / "notes.txt").write_text("not an image")
    out, report = tmp_path / "out", tmp_path / "r.json"
    with caplog.at_level("INFO", logger="completion"):
        r = cli("batch", "--images", images, "--mask-type", "center", "--out", out, "--model", model,
                "--iterations", "1", "--aligned", "--no-progress", "--report", report)  # fmt: skip
    # A dangling link, even one named x.png, is listed as ignored (README), not failed: exit 0.
    assert r.exit_code == 0, r.output
    done = {p.relative_to(out).as_posix() for p in out.rglob("*.png")}
    assert done == {"scan.png", "anim.png", "plain.png", "linked_folder/linked.png"}
    entries = {e["image"]: e for e in json.loads(report.read_text())["images"]}
    assert entries["dangling.png"]["status"] == "ignored" and "dangling" in entries["dangling.png"]["error"]
    assert entries["notes.txt"]["status"] == "ignored" and entries["loop"]["status"] == "ignored"
    rep = json.loads(report.read_text())
    assert (rep["total"], rep["done"], rep["failed"], rep["ignored"]) == (4, 4, 0, 3)
    assert "4 completed, 0 already done, 0 failed; 3 other paths ignored" in r.stderr
    logged = "\n".join(caplog.messages)
    for name in ("dangling.png", "notes.txt", "loop"):
        assert str(images / name) in logged, (name, logged)


def test_a_real_folder_wins_over_a_link_to_it(model: Path, tmp_path: Path) -> None:
    """`a_shortcut` sorts before `photos`, but the real folder is walked and the link ignored."""
    import json
    import os

    from completion.imageio import walk_images

    lk = tmp_path / "lk"
    png(lk / "photos" / "f.png")
    os.symlink("photos", lk / "a_shortcut")
    others: list[tuple[str, str]] = []
    assert list(walk_images(lk, others=others)) == [("photos", ["f.png"])]
    assert [rel for rel, _ in others] == ["a_shortcut"]
    out, report = tmp_path / "lkout", tmp_path / "r.json"
    r = cli("batch", "--images", lk, "--mask-type", "center", "--out", out, "--model", model,
            "--iterations", "1", "--aligned", "--no-progress", "--report", report)  # fmt: skip
    assert r.exit_code == 0, r.output
    assert [p.relative_to(out).as_posix() for p in out.rglob("*.png")] == ["photos/f.png"]
    entries = {e["image"]: e["status"] for e in json.loads(report.read_text())["images"]}
    assert entries == {"photos/f.png": "done", "a_shortcut": "ignored"}
