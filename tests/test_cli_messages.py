"""What the CLI says: one 'error: ...' line for every command, tracebacks only with --debug, genuine
bugs not hidden; messages that point somewhere useful (advice, help, plurals, skipped files, -q)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import ENV, cli, complete, one_line, one_line_error, png
from PIL import Image

# -- one line for every command, tracebacks only with --debug --------------------------------------


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


# -- messages that point somewhere useful ----------------------------------------------------------


def test_batch_advice_names_no_option_batch_lacks(model: Path, tmp_path: Path) -> None:
    images = tmp_path / "in"
    Image.fromarray(np.full((150, 200, 3), 90, np.uint8)).save(png(images / "flat.png"))  # no face
    r = cli("batch", "--images", images, "--mask-type", "center", "--out", tmp_path / "o", "--model", model,
            "--iterations", "1", "--no-progress")  # fmt: skip
    assert r.exit_code == 1 and "no face found" in r.stderr
    assert r.stderr.count("--box") == r.stderr.count("completion complete --box") > 0, r.stderr


def test_masks_help_lists_every_type() -> None:
    from completion.masks import _SIMPLE

    r = cli("masks", "--help")
    assert r.exit_code == 0 and "below" not in r.output
    for name in (*_SIMPLE, "random:F", "grid:STEP", "lowres:FACTOR"):
        assert name in r.output, name


def test_one_image_is_singular(model: Path, face: Path, tmp_path: Path) -> None:
    from completion.text import plural

    assert (plural(1, "image"), plural(2, "image"), plural(0, "image")) == ("1 image", "2 images", "0 images")
    r = cli("batch", "--images", face.parent, "--mask-type", "center", "--out", tmp_path / "o",
            "--model", model, "--iterations", "1", "--no-progress", "--aligned")  # fmt: skip
    # "1 images:" is the bug; "… 95.11 images/s" later in the line is the rate, not a count.
    assert r.exit_code == 0 and "1 image: 1 completed" in r.stderr and "1 images:" not in r.stderr, (
        r.exit_code,
        r.stderr,
        r.exception,
    )


def test_training_names_the_files_it_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from completion.data import FaceData

    good = [png(tmp_path / f"f{i}.png") for i in range(3)]
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    with caplog.at_level("WARNING", logger="completion"):
        data = FaceData(sorted([*good, bad]), 32, "none")
    assert data.skipped == 1 and len(data.cache) == 3
    assert any(str(bad) in m and "not a readable image" in m for m in caplog.messages), caplog.messages
    assert any("skipped 1 unreadable image of 4" in m for m in caplog.messages), caplog.messages


def test_quiet_hides_progress_bars(model: Path, face: Path, tmp_path: Path) -> None:
    args = ["batch", "--images", face.parent, "--mask-type", "center", "--model", model, "--iterations", "1",
            "--aligned"]  # fmt: skip
    loud = cli(*args, "--out", tmp_path / "a")
    assert loud.exit_code == 0 and "batch: 100%" in loud.stderr, loud.stderr
    quiet = cli("-q", *args, "--out", tmp_path / "b")
    assert quiet.exit_code == 0 and quiet.stderr == "", quiet.stderr


def test_sample_on_a_checkpoint_points_to_export(tmp_path: Path) -> None:
    from completion.bundle import CHECKPOINT_VERSION, FORMAT, write_file

    ckpt = tmp_path / "checkpoint.pt"
    write_file(ckpt, {"format": FORMAT, "kind": "checkpoint", "version": CHECKPOINT_VERSION})
    first = one_line(cli("sample", "--model", ckpt, "--out", tmp_path / "g.png"), 1)
    assert "training checkpoint" in first and f"completion export {ckpt}" in first
    assert not (tmp_path / "g.png").exists()


# -- wrong outputs refused before any work (issue 22) ------------------------------------------------


def test_bad_output_type_and_quality_refused_before_the_model_loads(face: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing.pt"  # were the model loaded first, this would be the error
    base = ("complete", "--image", face, "--mask-type", "center", "--model", missing)
    line = one_line_error(cli(*base, "--out", tmp_path / "o.xyz"), tmp_path / "o.xyz")
    assert "'.xyz'" in line and all(e in line for e in (".png", ".jpg", ".webp", ".tif", ".bmp"))
    r = cli(*base, "--out", tmp_path / "o.png", "--quality", "50")
    assert one_line(r, 2).startswith("Usage") and "--quality" in r.stderr and ".png" in r.stderr
    r = cli("sample", "--model", missing, "--out", tmp_path / "g.xyz")
    assert "'.xyz'" in one_line_error(r, tmp_path / "g.xyz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]  # nothing written
