"""Writing outputs: inputs are never overwritten (train-encoder replaces its model only when --out
names it), missing folders are made, an unwritable --out is found before any work, a full disk
leaves no partial file, and a run removes only temp files that are provably abandoned."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest
import torch
from cli_helpers import ENC, cli, complete, leftovers, mask_file, one_line, one_line_error
from PIL import Image

from completion.masks import make_mask

# -- never overwriting an input --------------------------------------------------------------------


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_never_overwrites_an_input(face: Path, models: dict, tmp_path: Path) -> None:
    before = face.read_bytes()
    r = complete(face, face, models["64"])
    assert r.exit_code == 2 and "overwrite" in r.stderr
    ckpt = tmp_path / "run" / "checkpoint.pt"
    r = cli("export", ckpt, "--out", ckpt)
    assert r.exit_code == 2 and "overwrite the checkpoint" in r.stderr
    # batch with --out = --images: face.png would be its own output, so that item fails.
    other = face.parent / "other.jpg"
    Image.open(face).save(other)
    r = cli("batch", "--images", face.parent, "--out", face.parent, "--mask-type", "center",
            "--model", models["64"], "--iterations", "1", "--no-progress")  # fmt: skip
    assert r.exit_code == 1 and "face.png" in r.stderr and "is an input file" in r.stderr
    assert face.read_bytes() == before and (face.parent / "other.png").exists()
    # A shared mask file in the output folder is an input too.
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    Image.open(face).save(imgs / "m.png")
    mask = tmp_path / "out" / "m.png"
    mask_file(mask.parent.mkdir() or mask, make_mask("center", 64, 64) * 255)
    mask_bytes = mask.read_bytes()
    r = cli("batch", "--images", imgs, "--out", tmp_path / "out", "--mask", mask,
            "--model", models["64"], "--iterations", "1", "--no-progress", "--overwrite")  # fmt: skip
    assert r.exit_code == 1 and "is an input file" in r.stderr
    assert mask.read_bytes() == mask_bytes


def test_train_encoder_without_out_leaves_the_model_alone(model: Path, face: Path, tmp_path: Path) -> None:
    m = tmp_path / "m.pt"
    m.write_bytes(model.read_bytes())
    before = digest(m)
    r = cli("train-encoder", "--model", m, "--data", face.parent, *ENC)
    assert one_line(r, 2).startswith("Usage") and "--out" in r.stderr
    assert digest(m) == before and sorted(p.name for p in tmp_path.iterdir()) == ["in", "m.pt"]


def test_train_encoder_writes_out_or_the_model_when_named(model: Path, face: Path, tmp_path: Path) -> None:
    m = tmp_path / "m.pt"
    m.write_bytes(model.read_bytes())
    before = digest(m)
    one_line(cli("train-encoder", "--model", m, "--data", face.parent, "--out", tmp_path / "e.pt", *ENC), 0)
    assert digest(m) == before and (tmp_path / "e.pt").exists()
    one_line(cli("train-encoder", "--model", m, "--data", face.parent, "--out", m, *ENC), 0)
    assert digest(m) != before


# -- output folders --------------------------------------------------------------------------------


def test_missing_folders_are_created(face: Path, models: dict, tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "c" / "o.png"
    assert complete(face, out, models["64"]).exit_code == 0
    assert out.exists() and not leftovers(tmp_path)
    assert oct(out.stat().st_mode & 0o777) != oct(0o600)  # an ordinary file, not mkstemp's 0600


@pytest.mark.parametrize("command", ["complete", "sample", "masks", "batch", "export"])
def test_unwritable_output_folder(command: str, face: Path, models: dict, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder is needed")
    out = blocker / "sub" / "o.png"
    if command == "complete":
        r = complete(face, out, models["64"])
    elif command == "sample":
        r = cli("sample", "--model", models["64"], "--n", "1", "--out", out)
    elif command == "masks":
        r = cli("masks", "--type", "center", "--out", out)
    elif command == "export":
        r = cli("export", tmp_path / "missing_run", "--out", out)
        one_line_error(r, tmp_path / "missing_run")
        return
    else:
        r = cli("batch", "--images", face.parent, "--out", blocker / "sub", "--mask-type", "center",
                "--model", models["64"], "--iterations", "1", "--no-progress")  # fmt: skip
        assert r.exit_code == 1 and "is a file, not a folder" in r.stderr
        return
    assert "is a file, not a folder" in one_line_error(r, out, blocker)
    assert blocker.read_text() == "a file where a folder is needed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "in"]


def _unwritable() -> Path:
    """A folder nobody may write in, root included (sysfs is mounted read-only)."""
    import os
    import tempfile

    for d in (Path("/sys"), Path("/proc")):
        try:
            fd, tmp = tempfile.mkstemp(dir=d)
        except OSError:
            return d
        os.close(fd)
        os.unlink(tmp)
    pytest.skip("no unwritable folder on this machine")


@pytest.mark.parametrize("command", ["complete", "batch", "batch-report", "sample", "train-encoder",
                                     "evaluate", "train", "complete-steps"])  # fmt: skip
def test_unwritable_out_fails_before_the_work(
    command: str, model: Path, face: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import completion.cli as cli_module

    def no_work(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("the model was loaded before --out was checked")

    monkeypatch.setattr(cli_module, "build_completer", no_work)
    monkeypatch.setattr(cli_module, "load_model", no_work)
    ro = _unwritable()
    out = ro / "sub" / "o.png"
    args = {
        "complete": ["complete", "--image", face, "--mask-type", "center", "--out", out, "--model", model],
        "complete-steps": ["complete", "--image", face, "--mask-type", "center", "--out", tmp_path / "o.png",
                           "--save-steps", "1", "--steps-dir", ro / "steps", "--model", model],
        "batch": ["batch", "--images", face.parent, "--mask-type", "center", "--out", ro / "done",
                  "--model", model],
        "batch-report": ["batch", "--images", face.parent, "--mask-type", "center",
                         "--out", tmp_path / "done", "--report", out, "--model", model],
        "sample": ["sample", "--model", model, "--out", out],
        "train-encoder": ["train-encoder", "--model", model, "--data", face.parent, "--out", out, *ENC],
        "evaluate": ["evaluate", "--images", face.parent, "--model", model, "--out", ro / "ev"],
        "train": ["train", "--data", face.parent, "--out", ro / "run", "--epochs", "1"],
    }[command]  # fmt: skip
    r = cli(*args)
    first = one_line(r, 1)
    assert first.startswith("error: ") and "cannot write" in first and str(ro) in first, first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


# -- partial and temp files ------------------------------------------------------------------------


def test_full_disk_leaves_no_partial_file(
    face: Path, models: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer fails half way with ENOSPC: one line, the old output untouched, no temp file."""
    out = tmp_path / "out" / "o.png"
    out.parent.mkdir()
    out.write_bytes(b"previous result")

    def full(self, fp, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        Path(fp).write_bytes(b"\x89PNG half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Image.Image, "save", full)
    line = one_line_error(complete(face, out, models["64"]), out)
    assert "No space left on device" in line
    assert out.read_bytes() == b"previous result" and not leftovers(tmp_path)
    # Model bundles go through the same writer.
    monkeypatch.setattr(torch, "save", lambda obj, f, *a, **k: full(None, f))
    one_line_error(cli("train-encoder", "--model", models["64"], "--data", face.parent, "--steps", "1",
                       "--batch-size", "2", "--out", tmp_path / "enc.pt", "--device", "cpu",
                       "--no-progress"), tmp_path / "enc.pt")  # fmt: skip
    assert not (tmp_path / "enc.pt").exists() and not leftovers(tmp_path)


def test_batch_keeps_temps_of_live_writers(model: Path, face: Path, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys
    import time

    from completion.imageio import STALE_SECONDS, temp_prefix

    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    live = out / f"{temp_prefix('face.png')}l1ve0000.tmp"  # this very process: a write in flight
    killed = out / f"{temp_prefix('face.png', dead.pid)}k1ll0000.tmp"
    unowned_new = out / ".face.png.n3w00000.tmp"  # an older version's name, just written
    unowned_old = out / ".face.png.01d00000.tmp"
    foreign_old = out / ".face.png.otherhost-1.f0r00000.tmp"
    for p in (live, killed, unowned_new, unowned_old, foreign_old):
        p.write_bytes(b"half")
    old = time.time() - STALE_SECONDS - 60
    for p in (unowned_old, foreign_old):
        os.utime(p, (old, old))
    one_line(cli("batch", "--images", face.parent, "--mask-type", "center", "--out", out, "--model", model,
                 "--iterations", "1", "--aligned", "--no-progress"), 0)  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == sorted(["face.png", live.name, unowned_new.name])
