"""Two CPU processes under torchrun (DDP over gloo) train one epoch and write one checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from completion.bundle import read_file

BATCH = 8
WORLD = 2


def test_torchrun_two_processes(tiny_faces: Path, tmp_path: Path) -> None:
    torchrun = Path(sys.executable).parent / "torchrun"
    if not torchrun.exists():
        pytest.skip(f"{torchrun} not found")
    out = tmp_path / "run"
    cmd = [
        str(torchrun), "--standalone", f"--nproc_per_node={WORLD}", "-m", "completion", "train",
        "--data", str(tiny_faces), "--out", str(out), "--epochs", "1", "--image-size", "32",
        "--ngf", "8", "--ndf", "8", "--batch-size", str(BATCH), "--device", "cpu", "--no-progress",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert r.returncode == 0, f"torchrun failed:\n{r.stdout}\n{r.stderr}"

    written = sorted(p.name for p in out.iterdir())
    assert [n for n in written if n.endswith(".pt")] == ["checkpoint.pt"]
    assert "samples_epoch_001.png" in written
    assert not [n for n in written if n.endswith(".tmp")]

    ckpt = read_file(out / "checkpoint.pt", "checkpoint")
    batches = 40 // WORLD // BATCH  # 40 readable images, equal shares per process
    assert ckpt["state"]["images_seen"] == WORLD * batches * BATCH
    assert ckpt["state"]["epoch"] == 1
    assert ckpt["meta"]["device"] == f"cpu x{WORLD}"
