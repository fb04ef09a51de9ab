"""train --resume from the CLI: it finds its data from any working directory, takes a moved --data,
and says which given options override the checkpoint's."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import cli, one_line, png


def test_resume_from_elsewhere_with_moved_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import shutil

    from completion.bundle import read_file

    work = tmp_path / "work"
    for i in range(8):
        png(work / "faces" / f"f{i}.png")
    monkeypatch.chdir(work)
    base = ("--image-size", "32", "--ngf", "4", "--ndf", "4", "--batch-size", "4", "--device", "cpu",
            "--no-progress", "--precision", "fp32", "--no-ema")  # fmt: skip
    one_line(cli("train", "--data", "faces", "--out", tmp_path / "run", "--epochs", "1", *base), 0)
    saved = read_file(tmp_path / "run" / "checkpoint.pt", "checkpoint")["options"]["data"]
    assert saved == str(work / "faces")  # absolute, though typed relative

    monkeypatch.chdir(tmp_path)  # another working directory: the stored path still works
    with caplog.at_level("INFO", logger="completion"):
        r = cli("train", "--out", tmp_path / "run", "--resume", "--epochs", "2", "--lr", "0.5",
                "--batch-size", "2", "--no-progress")  # fmt: skip
    one_line(r, 0)
    line = next(m for m in caplog.messages if m.startswith("resuming"))
    assert "--lr 0.5 (checkpoint: 0.0002)" in line and "--batch-size 2 (checkpoint: 4)" in line

    shutil.move(work / "faces", tmp_path / "moved")  # the data moved: give it anew
    caplog.clear()
    with caplog.at_level("INFO", logger="completion"):
        r = cli("train", "--out", tmp_path / "run", "--resume", "--epochs", "3", "--data", "moved",
                "--no-progress")  # fmt: skip
    one_line(r, 0)
    line = next(m for m in caplog.messages if m.startswith("resuming"))
    assert str(tmp_path / "moved") in line and "no given option differs" in line
    opts = read_file(tmp_path / "run" / "checkpoint.pt", "checkpoint")["options"]
    assert opts["data"] == str(tmp_path / "moved") and opts["batch_size"] == 4
