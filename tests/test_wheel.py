"""The installed tool, not the source tree: a wheel built from this project installs in a fresh
virtual environment and runs the README's quick start from another folder (issue 15.2).

Offline and quick: the wheel is built with the test environment's setuptools (no build isolation),
installed without dependencies, and the fresh environment borrows this one's packages (torch, ...)
through a .pth line, which adds the folder but not this environment's editable hook."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
ENV.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def _run(args: list, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    p = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout
    )
    assert p.returncode == 0, (args, p.stdout[-2000:], p.stderr[-2000:])
    return p


def test_wheel_installs_and_runs_the_quick_start_elsewhere(tmp_path: Path) -> None:
    # Build from a copy of what a source distribution holds, so no build/ appears in the checkout.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "THIRD_PARTY_NOTICES.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "completion", src / "completion", ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "--no-index",
          "-q", "-w", dist], src)  # fmt: skip
    (wheel,) = dist.glob("dcgan_completion-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "completion/weights/celeba64.pt" in names
    # The face detector, with its licence and source note.
    yunet = ("yunet_n_640_640.onnx", "LICENSE", "SOURCE.md")
    assert {f"completion/assets/yunet/{n}" for n in yunet} <= set(names), names
    assert any(n.endswith("licenses/LICENSE") for n in names), names
    assert any(n.endswith("licenses/THIRD_PARTY_NOTICES.md") for n in names), names

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path)
    py = venv / "bin" / "python"
    target = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path)
                  .stdout.strip())  # fmt: skip
    # Dependencies from this environment; its editable hook is a .pth of its own and is not run.
    (target / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _run([sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index", "-q", wheel],
         tmp_path)  # fmt: skip

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = "import completion, completion.bundle as b; print(completion.__file__, b.default_model_path())"
    where = _run([py, "-c", code], elsewhere).stdout.split()
    assert all(Path(w).is_relative_to(venv) for w in where), where
    face = REPO / "samples" / "faces" / "face_01.png"
    _run([venv / "bin" / "completion", "complete", "--image", face, "--mask-type", "center",
          "--out", "out.png", "--concat"], elsewhere)  # fmt: skip
    out = np.asarray(Image.open(elsewhere / "out.png"))
    assert out.shape == (64, 4 * 64, 3)
