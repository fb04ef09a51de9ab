"""Sharding a batch: bad --shard values are usage errors; RANK/WORLD_SIZE shard only under torchrun;
manual shards never share a report file."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import cli, png


@pytest.mark.parametrize("shard", ["1/x", "2/2", "-1/2", "foo", "1"])
def test_batch_bad_shard_exit_2(shard: str, face: Path, models: dict, tmp_path: Path) -> None:
    r = cli("batch", "--images", face.parent, "--out", tmp_path / "o", "--mask-type", "center",
            "--model", models["64"], "--shard", shard)  # fmt: skip
    assert r.exit_code == 2 and "--shard" in r.stderr
    assert not (tmp_path / "o").exists()


def test_rank_outside_torchrun_does_not_shard(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import json

    images = tmp_path / "in"
    for i in range(4):
        png(images / f"f{i}.png")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    with caplog.at_level("WARNING", logger="completion"):
        r = cli("batch", "--images", images, "--mask-type", "center", "--out", tmp_path / "o", "--model",
                model, "--iterations", "1", "--aligned", "--no-progress",
                "--report", tmp_path / "r.json")  # fmt: skip
    assert r.exit_code == 0 and json.loads((tmp_path / "r.json").read_text())["done"] == 4
    assert any("not torchrun" in m for m in caplog.messages)


def test_manual_shards_write_separate_reports(model: Path, tmp_path: Path) -> None:
    import json

    images = tmp_path / "in"
    for i in range(4):
        png(images / f"f{i}.png")
    for i in range(2):
        r = cli("batch", "--images", images, "--mask-type", "center", "--out", tmp_path / "o", "--model",
                model, "--iterations", "1", "--aligned", "--no-progress", "--report", tmp_path / "r.json",
                "--shard", f"{i}/2")  # fmt: skip
        assert r.exit_code == 0, r.output
    reports = sorted(p.name for p in tmp_path.glob("r*.json"))
    assert reports == ["r.shard0of2.json", "r.shard1of2.json"]
    assert sum(json.loads((tmp_path / n).read_text())["done"] for n in reports) == 4
