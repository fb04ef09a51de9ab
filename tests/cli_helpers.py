"""Helpers for tests that drive the CLI as a user meets it: tiny random-weight model bundles, a CliRunner
call, the one-line-error checks, and small files to feed it (masks, noise pictures).

Imported by test modules as `from cli_helpers import ...`; the `models` and `model` fixtures built on
`tiny_bundle` live in conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from click.testing import CliRunner
from PIL import Image

from completion.bundle import save_model
from completion.cli import main
from completion.config import ModelConfig
from completion.models import Discriminator, Generator

# For subprocesses: one thread each, as the test process itself runs (see conftest.py).
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# train-encoder's options for one quick CPU step.
ENC = ("--steps", "1", "--batch-size", "2", "--device", "cpu", "--no-progress")


def tiny_bundle(path: Path, size: int = 64, crop: str = "center:0.72") -> Path:
    """A model bundle of random weights (seed 0) for size x size pictures, ngf = ndf = 8 (crop
    "none": the API's plumbing tests, whose pictures are the model's size)."""
    torch.manual_seed(0)
    cfg = ModelConfig(image_size=size, ngf=8, ndf=8, crop=crop)
    save_model(path, cfg, Generator(cfg).eval(), Discriminator(cfg).eval())
    return path


def cli(*args: object):  # noqa: ANN201
    return CliRunner().invoke(main, [str(a) for a in args])


def complete(image: Path, out: Path, model: Path, *extra: object):  # noqa: ANN201
    extra = extra if any(str(e).startswith("--mask") for e in extra) else ("--mask-type", "center", *extra)
    return cli("complete", "--image", image, "--out", out, "--model", model, "--iterations", "1", *extra)


def one_line_error(r, *names: object) -> str:  # noqa: ANN001
    """Exit 1 with exactly one 'error: ...' line on stderr naming every given file; no traceback."""
    assert r.exit_code == 1, (r.exit_code, r.output, r.exception)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: "), r.stderr
    for n in names:
        assert str(n) in lines[0], (n, lines[0])
    assert "Traceback" not in r.output
    return lines[0]


def one_line(r, code: int = 1) -> str:  # noqa: ANN001
    """Exit `code` with no traceback; returns the first stderr line."""
    assert r.exit_code == code, (r.exit_code, r.output, r.exception)
    assert "Traceback" not in r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    return lines[0] if lines else ""


def leftovers(folder: Path) -> list[str]:
    """Temp files an atomic write would leave behind (.<name>.XXXX.tmp)."""
    return [p.name for p in folder.rglob("*") if p.name.endswith(".tmp")] if folder.exists() else []


def mask_file(path: Path, arr: np.ndarray) -> Path:
    """arr saved as an 8-bit grey mask picture at path."""
    Image.fromarray(arr.astype(np.uint8)).save(path)
    return path


def png(path: Path, value: int | None = None) -> Path:
    """A 64x64 picture at path (folders made): RGB noise, or with `value` a grey mask whose middle
    32x32 square is `value` on black."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(abs(hash(path.name)) % 2**32)
    if value is None:
        arr = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    else:
        arr = np.zeros((64, 64), np.uint8)
        arr[16:48, 16:48] = value
    Image.fromarray(arr).save(path)
    return path


def assert_range_of(param, spec) -> None:  # noqa: ANN001 - a click option and its options.py spec
    """The click option's numeric range is the one declared in options.py."""
    assert (param.type.min, param.type.max, param.type.min_open, param.type.max_open) == (
        spec.low,
        spec.high,
        spec.low_open,
        spec.high_open,
    )
