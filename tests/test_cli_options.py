"""Option values: out-of-range or malformed options are usage errors (exit 2) that write nothing;
--seed is checked at the option in every command that has one, and the largest seed works."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import ENC, cli, one_line


@pytest.mark.parametrize(
    "args",
    [
        ["--iterations", "-1"],
        ["--lam", "-0.1"],
        ["--lam", "nan"],
        ["--lr", "inf"],
        ["--restarts", "0"],
        ["--mask-type", "bogus"],
        ["--mask-type", "random:1.5"],
        ["--box", "1,2,3"],
        ["--box", "500,500,10,10"],
        ["--box", "-80,0,40,40"],
    ],
)
def test_complete_bad_options_exit_2(args: list[str], face: Path, models: dict, tmp_path: Path) -> None:
    base = ["complete", "--image", face, "--out", tmp_path / "o.png", "--model", models["64"]]
    if "--mask-type" not in args:
        base += ["--mask-type", "center"]
    r = cli(*base, *args)
    assert r.exit_code == 2, (r.output, r.exception)
    assert "Traceback" not in r.output and not (tmp_path / "o.png").exists()
    if args[0] == "--box" and args[1].count(",") == 3:
        assert "outside the 64x64 image" in r.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["masks", "--type", "center", "--size", "0", "--out", "m.png"],
        ["masks", "--type", "center", "--size", "1000000", "--out", "m.png"],
        ["masks", "--type", "grid:1", "--out", "m.png"],
        ["sample", "--n", "0", "--out", "g.png"],
        ["train", "--data", ".", "--out", "run", "--lr", "nan"],
        ["train", "--data", ".", "--out", "run", "--epochs", "0"],
        ["train", "--data", ".", "--out", "run", "--label-smoothing", "0.9"],
    ],
)
def test_other_bad_options_exit_2(args: list[str], tmp_path: Path) -> None:
    r = cli(*[str(tmp_path / a) if a in ("m.png", "g.png", "run") else a for a in args])
    assert r.exit_code == 2, r.output
    assert not any(tmp_path.iterdir())


# -- seeds are checked at the option, in every command that has one --------------------------------


@pytest.mark.parametrize("seed", ["-1", "99999999999999999999999", "4294967296"])
@pytest.mark.parametrize(
    "command",
    [
        ["complete", "--image", "{face}", "--mask-type", "center", "--out", "{tmp}/o.png", "--model", "{m}"],
        ["batch", "--images", "{dir}", "--mask-type", "center", "--out", "{tmp}/o", "--model", "{m}"],
        ["masks", "--type", "random:0.5", "--out", "{tmp}/m.png"],
        ["train-encoder", "--model", "{m}", "--data", "{dir}", "--out", "{tmp}/e.pt", *ENC],
        ["sample", "--model", "{m}", "--n", "4", "--out", "{tmp}/g.png"],
        ["train", "--data", "{dir}", "--out", "{tmp}/run", "--epochs", "1"],
        ["evaluate", "--images", "{dir}", "--model", "{m}", "--out", "{tmp}/ev"],
    ],
)
def test_seed_out_of_range_is_a_usage_error(
    command: list[str], seed: str, model: Path, face: Path, tmp_path: Path
) -> None:
    args = [a.format(face=face, dir=face.parent, tmp=tmp_path, m=model) for a in command]
    first = one_line(cli(*args, "--seed", seed), 2)
    assert first.startswith("Usage") and "'--seed'" in cli(*args, "--seed", seed).stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_largest_seed_works(model: Path, face: Path, tmp_path: Path) -> None:
    from completion.train import step_generator

    step_generator(2**32 - 1, 10_000, 64, 10**9)  # the per-step seed derived from it stays in range
    one_line(cli("complete", "--image", face, "--mask-type", "random:0.5", "--out", tmp_path / "o.png",
                 "--model", model, "--iterations", "1", "--seed", 2**32 - 1), 0)  # fmt: skip
    assert (tmp_path / "o.png").exists()
