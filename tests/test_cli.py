"""The command line: train -> export -> sample, usage errors (exit 2), one-line errors (exit 1)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import assert_range_of
from click.testing import CliRunner
from PIL import Image

from completion import __version__
from completion.bundle import load_model, read_file
from completion.cli import main

TINY = [
    "--image-size",
    "32",
    "--ngf",
    "8",
    "--ndf",
    "8",
    "--batch-size",
    "8",
    "--device",
    "cpu",
    "--no-progress",
]


def run(*args: str):  # noqa: ANN201
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def test_train_export_sample(tiny_faces: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    r = run("train", "--data", tiny_faces, "--out", out, "--epochs", "1", *TINY)
    assert r.exit_code == 0, r.output
    ckpt = read_file(out / "checkpoint.pt", "checkpoint")
    assert ckpt["state"]["epoch"] == 1 and ckpt["config"]["image_size"] == 32

    model_file = tmp_path / "model.pt"
    r = run("export", out, "--out", model_file)  # a run folder is accepted for its checkpoint
    assert r.exit_code == 0, r.output
    assert load_model(model_file).meta["images_seen"] == 40
    # An existing bundle is replaced only with --overwrite, as training needs --resume (issue 22).
    model_file.write_bytes(b"an earlier bundle")
    r = run("export", out, "--out", model_file)
    assert r.exit_code == 2 and "--overwrite" in r.stderr and str(model_file) in r.stderr
    assert model_file.read_bytes() == b"an earlier bundle"
    assert run("export", out, "--out", model_file, "--overwrite").exit_code == 0
    assert load_model(model_file).meta["images_seen"] == 40

    grid = tmp_path / "grid.png"
    r = run("sample", "--model", model_file, "--n", "4", "--out", grid)
    assert r.exit_code == 0, r.output
    with Image.open(grid) as im:
        assert im.size == (2 * 34 + 2, 2 * 34 + 2)  # 2x2 faces of 32 px with 2 px padding

    # Training into a folder that already holds a checkpoint needs --resume.
    r = run("train", "--data", tiny_faces, "--out", out, "--epochs", "1", *TINY)
    assert r.exit_code == 2
    assert "--resume" in r.stderr

    # --resume continues without --data, from the saved options.
    r = run("train", "--out", out, "--epochs", "2", "--resume", "--no-progress")
    assert r.exit_code == 0, r.output
    assert read_file(out / "checkpoint.pt", "checkpoint")["state"]["epoch"] == 2


def test_train_without_data_is_usage_error(tmp_path: Path) -> None:
    r = run("train", "--out", tmp_path / "run", *TINY)
    assert r.exit_code == 2
    assert "--data" in r.stderr


def test_train_bad_crop_is_usage_error(tiny_faces: Path, tmp_path: Path) -> None:
    r = run("train", "--data", tiny_faces, "--out", tmp_path / "run", "--crop", "foo", *TINY)
    assert r.exit_code == 2


def test_train_empty_folder_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    r = run("train", "--data", tmp_path / "empty", "--out", tmp_path / "run", *TINY)
    assert r.exit_code == 1
    assert r.stderr.startswith("error: ") and "no images" in r.stderr


def test_sample_missing_model_is_one_line_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pt"
    r = run("sample", "--model", missing, "--n", "4", "--out", tmp_path / "g.png")
    assert r.exit_code == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ") and str(missing) in lines[0]
    assert "Traceback" not in r.output
    assert not (tmp_path / "g.png").exists()


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def test_entry_point_help() -> None:
    exe = shutil.which("completion", path=str(Path(sys.executable).parent)) or shutil.which("completion")
    if exe is None:
        pytest.skip("the `completion` entry point is not installed")
    r = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120, env=_env())
    assert r.returncode == 0, r.stderr
    assert "train" in r.stdout and "sample" in r.stdout


def test_python_m_version() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "completion", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
    )
    assert r.returncode == 0, r.stderr
    assert __version__ in r.stdout


def test_completion_options_come_from_the_dataclass() -> None:
    """Every CompletionOptions field declared as an option is an option of the commands that take it,
    with the field's default, help and range; none is listed twice, and the rest are absent."""
    from dataclasses import fields

    import click

    from completion.options import CompletionOptions, spec_of

    commands = {"complete": ("", "candidates"), "batch": ("",), "evaluate": ("",)}
    for command, groups in commands.items():
        params = {p.name: p for p in main.commands[command].params}
        names = [p.name for p in main.commands[command].params]
        assert len(names) == len(set(names))
        for f in fields(CompletionOptions):
            spec = spec_of(f)
            if spec is None or spec.group not in groups:
                assert f.name not in params, (command, f.name)
                continue
            p = params[f.name]
            assert p.opts == ["--" + f.name.replace("_", "-")]
            assert p.default == f.default and p.show_default and p.help == spec.help
            if spec.choices:
                assert tuple(p.type.choices) == spec.choices
            else:
                assert_range_of(p, spec)
                with pytest.raises(click.BadParameter):
                    p.type.convert("nan" if isinstance(f.default, float) else "x", p, None)
    assert "--beta1" not in run("complete", "--help").output  # fields without CLI metadata stay out
    out = " ".join(run("batch", "--help").output.split())  # as one line: help wraps anywhere
    assert "Adam's learning rate on z." in out and "[default: 0.025; x>0]" in out
    assert "--samples" not in out
