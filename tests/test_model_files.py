"""Model files as the CLI meets them: every bad --model (missing, corrupt, truncated, of another
version, foreign, mismatched) is one line naming it, no model file can run code, and a model of
another size than the image is handled or explained. (tests/test_bundle.py tests the loader itself.)"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import cli, complete, one_line_error
from PIL import Image

from completion.bundle import FORMAT, read_file
from completion.masks import make_mask


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (os.system, (f"touch {self.marker}",))


def _bad_model(kind: str, folder: Path, good: Path) -> Path:
    path = folder / f"{kind}.pt"
    if kind == "missing":
        return path
    if kind == "corrupt":
        path.write_bytes(np.random.default_rng(1).bytes(5000))
    elif kind == "truncated":
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind in ("older", "newer"):
        obj = read_file(good, "model")
        obj["version"] = 0 if kind == "older" else 99
        torch.save(obj, path)
    elif kind == "foreign":
        torch.save({"state_dict": {"w": torch.zeros(3)}}, path)
    elif kind == "mismatched":
        obj = read_file(good, "model")
        obj["config"]["ngf"] = 16
        torch.save(obj, path)
    return path


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing", "no such model file"),
        ("corrupt", "corrupt or truncated"),
        ("truncated", "corrupt or truncated"),
        ("empty", "corrupt or truncated"),
        ("older", "version 0 is not supported"),
        ("newer", "version 99 is not supported"),
        ("foreign", "not a dcgan-completion model"),
        ("mismatched", "does not match"),
    ],
)
def test_bad_model_file(kind: str, message: str, face: Path, models: dict, tmp_path: Path) -> None:
    bad = _bad_model(kind, tmp_path, models["64"])
    out = tmp_path / "o.png"
    assert message in one_line_error(complete(face, out, bad), bad)
    assert not out.exists()


def test_code_in_a_model_file_never_runs(face: Path, tmp_path: Path) -> None:
    marker = (tmp_path / "PWNED").resolve()
    evil = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "kind": "model", "version": 1, "meta": Payload(marker)}, evil)
    for args in (
        ("complete", "--image", face, "--mask-type", "center", "--out", tmp_path / "o.png", "--model", evil),
        ("sample", "--model", evil, "--out", tmp_path / "g.png"),
        ("export", evil, "--out", tmp_path / "e.pt"),
    ):
        line = one_line_error(cli(*args), evil)
        assert "refused" in line and "nothing was run" in line
    assert not marker.exists()
    # Control: unpickled without restriction, the same payload does run.
    import pickle

    pickle.loads(pickle.dumps(Payload(marker)))  # noqa: S301 - deliberate
    assert marker.exists()


def test_model_of_another_size(face: Path, models: dict, tmp_path: Path) -> None:
    """A 32 px model and an 80x80 image: not a face crop (square at a model size), so it is taken
    as a photo; with no face in it that is a clear error pointing at --aligned, and with --aligned
    it goes the canonical way (resized to 32, completed, pasted back at 80) leaving every known
    pixel as it was. A 64x64 image is a face crop of the 64-px model: taken whole by the 32-px one."""
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (80, 80, 3), dtype=np.uint8)).save(photo)
    out = tmp_path / "o.png"
    line = one_line_error(complete(photo, out, models["32"]), photo)
    assert "--aligned" in line and not out.exists()
    for src_path, side, extra in ((photo, 80, ("--aligned",)), (face, 64, ())):
        r = complete(src_path, out, models["32"], *extra)
        assert r.exit_code == 0, r.output
        res, src = np.asarray(Image.open(out)), np.asarray(Image.open(src_path))
        known = make_mask("center", side, side)
        assert res.shape == (side, side, 3) and np.array_equal(res[known], src[known])
        assert not np.array_equal(res[~known], src[~known])
