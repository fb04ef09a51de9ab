"""Ctrl-C: complete, batch and train stop within seconds with the one line "interrupted" (exit 130),
also while torch is still importing; they leave no partial file, and batch and train resume from
where they stopped (train bit for bit)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import ENV, cli, leftovers
from PIL import Image

from completion.bundle import read_file


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _interrupt(cmd: list[str], ready, timeout: float = 240) -> subprocess.CompletedProcess:  # noqa: ANN001
    """Start cmd, wait until ready(proc) says it is at work, send SIGINT, and collect it."""
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None and not ready(proc):
            time.sleep(0.05)
        assert proc.poll() is None, "ended before it could be interrupted: " + proc.communicate()[1]
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert took < 30, f"took {took:.1f} s to stop"
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _interrupted(p: subprocess.CompletedProcess) -> None:
    assert p.returncode == 130, p.stderr
    assert "Traceback" not in p.stderr and p.stderr.strip().splitlines()[-1] == "interrupted", p.stderr


def test_ctrl_c_during_complete(face: Path, models: dict, tmp_path: Path) -> None:
    out = tmp_path / "out" / "o.png"
    cmd = [sys.executable, "-m", "completion", "complete", "--image", str(face), "--mask-type", "center",
           "--out", str(out), "--model", str(models["64"]), "--iterations", "10000000"]  # fmt: skip
    # Importing torch takes about 3 CPU seconds: past 6 the optimisation is running.
    _interrupted(_interrupt(cmd, lambda proc: _cpu_seconds(proc.pid) > 6))
    assert not out.exists() and not leftovers(tmp_path)


def _importing_torch(proc: subprocess.Popen) -> bool:
    try:
        return "libtorch" in Path(f"/proc/{proc.pid}/maps").read_text()
    except OSError:
        return False


def test_ctrl_c_while_importing_torch(face: Path, models: dict, tmp_path: Path) -> None:
    """Ctrl-C in the seconds before the CLI is loaded still gives the one-line "interrupted"."""
    exe = shutil.which("completion", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the `completion` entry point is not installed")
    out = tmp_path / "o.png"
    cmd = [exe, "complete", "--image", str(face), "--mask-type", "center", "--out", str(out),
           "--model", str(models["64"])]  # fmt: skip
    _interrupted(_interrupt(cmd, _importing_torch))
    assert not out.exists()


def test_ctrl_c_during_batch_then_resume(models: dict, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    images, out = tmp_path / "images", tmp_path / "out"
    expected = set()
    for i in range(16):
        rel = f"d{i % 2}/img{i:02d}.png"
        (images / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(images / rel)
        expected.add(rel)
    args = ["batch", "--images", str(images), "--out", str(out), "--mask-type", "center",
            "--model", str(models["64"]), "--iterations", "100", "--batch-size", "2",
            "--no-progress"]  # fmt: skip
    p = _interrupt(
        [sys.executable, "-m", "completion", *args],
        lambda proc: out.exists() and any(q.suffix == ".png" for q in out.rglob("*")),
    )
    _interrupted(p)
    done = {q.relative_to(out).as_posix() for q in out.rglob("*.png")}
    assert done and done < expected and not leftovers(out)
    for rel in done:  # whatever was written is whole
        with Image.open(out / rel) as im:
            im.load()
    report = tmp_path / "r.json"
    r = cli(*args, "--report", report)
    assert r.exit_code == 0, r.output
    assert {q.relative_to(out).as_posix() for q in out.rglob("*.png")} == expected and not leftovers(out)
    rep = json.loads(report.read_text())
    assert rep["skipped_existing"] == len(done) and rep["done"] == len(expected) - len(done)


def test_ctrl_c_during_train_then_resume(tiny_faces: Path, tmp_path: Path) -> None:
    """Interrupted training writes a consistent checkpoint (the step in progress is finished first);
    resuming from it gives bit for bit the weights of a run that was never interrupted."""
    run = tmp_path / "run"
    tiny = ["--image-size", "32", "--ngf", "8", "--ndf", "8", "--batch-size", "8", "--device", "cpu",
            "--no-progress", "--checkpoint-minutes", "0"]  # fmt: skip
    cmd = [sys.executable, "-m", "completion", "train", "--data", str(tiny_faces), "--out", str(run),
           "--epochs", "100000", *tiny]  # fmt: skip
    p = _interrupt(cmd, lambda proc: (run / "checkpoint.pt").exists())
    _interrupted(p)
    assert "--resume" in p.stderr
    state = read_file(run / "checkpoint.pt", "checkpoint")["state"]
    assert state["epoch"] >= 1 and not leftovers(run)
    target = state["epoch"] + 1
    r = cli("train", "--out", run, "--resume", "--epochs", target, "--no-progress")
    assert r.exit_code == 0, r.output
    resumed = read_file(run / "checkpoint.pt", "checkpoint")
    assert resumed["state"]["epoch"] == target

    straight = tmp_path / "straight"
    r = cli("train", "--data", tiny_faces, "--out", straight, "--epochs", target, *tiny)
    assert r.exit_code == 0, r.output
    ref = read_file(straight / "checkpoint.pt", "checkpoint")
    assert resumed["state"]["images_seen"] == ref["state"]["images_seen"]
    for k, v in ref["generator"].items():
        assert torch.equal(resumed["generator"][k], v), k
