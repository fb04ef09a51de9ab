"""`completion batch`: pairing, failures, report, resuming after SIGKILL, sharding."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from completion import complete as complete_module
from completion.batch import Job, pair_files, parse_shard, run_batch, shard, shard_from_env
from completion.bundle import load_model, save_model
from completion.cli import main
from completion.complete import Completer, CompletionOptions
from completion.config import ModelConfig
from completion.errors import MaskError
from completion.imageio import temp_prefix
from completion.models import Discriminator, Generator


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A width-8, 32 px model with random weights: batch mechanics need no trained model."""
    torch.manual_seed(0)
    cfg = ModelConfig(image_size=32, ngf=8, ndf=8, crop="none")
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_model(path, cfg, Generator(cfg).eval(), Discriminator(cfg).eval())
    return path


def dead_pid() -> int:
    """The id of a process that has exited."""
    p = subprocess.Popen([sys.executable, "-c", ""])
    p.wait()
    return p.pid


def _face(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _hole(w: int, h: int) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 255  # white = hole
    return m


def _save(path: Path, arr: np.ndarray, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format=fmt)


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Path, Path]:
    """images/ and masks/ with nested folders, mixed mask formats, LaMa masks and bad inputs.

    Good: a.png (mask a.png), b.jpg (mask b.JPG), sub/c.png 40x40 (mask sub/c.bmp),
    sub/deeper/d.PNG 48x32 (mask sub/deeper/d.png), sub/h.png (mask 64x64: resized),
    sub/p_mask.png (an image: LaMa's naming rule does not apply with a separate masks folder).
    Bad: broken.png (corrupt), f.png (mask of another aspect ratio), g.png (corrupt mask),
    sub/e.png (no mask)."""
    rng = np.random.default_rng(0)
    images, masks = tmp_path / "images", tmp_path / "masks"
    _save(images / "a.png", _face(rng, 32, 32))
    _save(masks / "a.png", _hole(32, 32))
    _save(images / "b.jpg", _face(rng, 32, 32), "JPEG")
    _save(masks / "b.JPG", _hole(32, 32), "JPEG")
    _save(images / "sub" / "c.png", _face(rng, 40, 40))
    _save(masks / "sub" / "c.bmp", _hole(40, 40))
    _save(images / "sub" / "deeper" / "d.PNG", _face(rng, 48, 32))
    _save(masks / "sub" / "deeper" / "d.png", _hole(48, 32))
    _save(images / "sub" / "p_mask.png", _face(rng, 32, 32))
    _save(masks / "sub" / "p_mask.png", _hole(32, 32))
    _save(images / "sub" / "h.png", _face(rng, 32, 32))
    _save(masks / "sub" / "h.png", _hole(64, 64))
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    _save(masks / "broken.png", _hole(32, 32))
    _save(images / "f.png", _face(rng, 32, 32))
    _save(masks / "f.png", _hole(64, 32))
    _save(images / "g.png", _face(rng, 32, 32))
    (masks / "g.png").write_bytes(b"garbage")
    _save(images / "sub" / "e.png", _face(rng, 32, 32))
    (images / "notes.txt").write_text("not an image")
    return images, masks


GOOD = {"a.png": "a.png", "b.jpg": "b.png", "sub/c.png": "sub/c.png", "sub/deeper/d.PNG": "sub/deeper/d.png",
        "sub/h.png": "sub/h.png", "sub/p_mask.png": "sub/p_mask.png"}  # fmt: skip
BAD = {
    "broken.png": "not a readable image",
    "f.png": "aspect ratio",
    "g.png": "masks/g.png: not a readable image",
    "sub/e.png": "no mask found",
}


def run_cli(*args: object):  # noqa: ANN201
    return CliRunner().invoke(main, [str(a) for a in args])


def outputs(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}


def test_pairing(folder: tuple[Path, Path]) -> None:
    images, masks = folder
    jobs, failures = pair_files(images, masks)
    assert {j.rel: j.output for j in jobs} == {**GOOD, "broken.png": "broken.png", "f.png": "f.png",
                                               "g.png": "g.png"}  # fmt: skip
    by_rel = {j.rel: j for j in jobs}
    assert by_rel["b.jpg"].mask == masks / "b.JPG"
    assert by_rel["sub/c.png"].mask == masks / "sub" / "c.bmp"
    assert by_rel["sub/deeper/d.PNG"].mask == masks / "sub" / "deeper" / "d.png"
    assert [(f.rel, f.error) for f in failures if f.status == "failed"] == [("sub/e.png", "no mask found")]
    assert [(f.rel, f.status) for f in failures if f.status != "failed"] == [("notes.txt", "ignored")]
    assert [j.rel for j in jobs] == sorted(j.rel for j in jobs)


def test_lama_layout_and_collisions(tmp_path: Path) -> None:
    """--masks equal to --images: LaMa's masks only; several masks give one output each; x.jpg
    and x.png side by side would share an output, so the second fails."""
    rng = np.random.default_rng(1)
    _save(tmp_path / "p.png", _face(rng, 32, 32))
    _save(tmp_path / "p_mask.png", _hole(32, 32))
    _save(tmp_path / "q.png", _face(rng, 32, 32))
    _save(tmp_path / "q_mask000.png", _hole(32, 32))
    _save(tmp_path / "q_mask001.png", _hole(32, 32))
    _save(tmp_path / "r.jpg", _face(rng, 32, 32), "JPEG")
    _save(tmp_path / "r.png", _face(rng, 32, 32))
    _save(tmp_path / "r_mask.png", _hole(32, 32))
    jobs, failures = pair_files(tmp_path, tmp_path)
    assert [(j.rel, j.mask.name, j.output) for j in jobs] == [
        ("p.png", "p_mask.png", "p.png"),
        ("q.png", "q_mask000.png", "q_mask000.png"),
        ("q.png", "q_mask001.png", "q_mask001.png"),
        ("r.jpg", "r_mask.png", "r.png"),
    ]
    assert [(f.rel, f.error) for f in failures] == [("r.png", "output r.png is already the output of r.jpg")]


def test_batch_folder(folder: tuple[Path, Path], tiny_bundle: Path, tmp_path: Path,
                      caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    images, masks = folder
    out, report = tmp_path / "out", tmp_path / "report.json"
    args = ["batch", "--images", images, "--masks", masks, "--out", out, "--model", tiny_bundle,
            "--iterations", "2", "--batch-size", "3", "--report", report, "--no-progress",
            "--aligned"]  # fmt: skip
    with caplog.at_level("WARNING", logger="completion"):
        r = run_cli(*args)
    assert r.exit_code == 1, r.output
    assert outputs(out) == set(GOOD.values())
    lossless = {"a.png": masks / "a.png", "sub/c.png": masks / "sub" / "c.bmp",
                "sub/deeper/d.PNG": masks / "sub" / "deeper" / "d.png"}  # fmt: skip
    for rel, o in GOOD.items():
        src = Image.open(images / rel)
        with Image.open(out / o) as im:
            assert im.format == "PNG" and im.size == src.size
            res = np.asarray(im.convert("RGB"))
        if rel in lossless:  # known pixels are kept bit for bit
            known = np.asarray(Image.open(lossless[rel])) < 128
            assert np.array_equal(res[known], np.asarray(src.convert("RGB"))[known])

    # One warning line per bad input, and a summary listing them; exit code 1.
    skipped = [m for m in caplog.messages if m.startswith("skipped ")]
    assert len(skipped) == len(BAD) and all("\n" not in m for m in skipped)
    for rel, why in BAD.items():
        assert any(str(images / rel) in m and why in m for m in skipped), (rel, skipped)
        assert f"failed: {rel}:" in r.stderr
    assert "10 images: 6 completed, 0 already done, 4 failed" in r.stderr

    rep = json.loads(report.read_text())
    assert {k: rep[k] for k in ("total", "done", "skipped_existing", "failed")} == {
        "total": 10, "done": 6, "skipped_existing": 0, "failed": 4}  # fmt: skip
    entries = {e["image"]: e for e in rep["images"]}
    assert set(entries) == set(GOOD) | set(BAD) | {"notes.txt"}
    note = entries["notes.txt"]
    assert note["status"] == "ignored" and "not an image file (.txt" in note["error"]
    for rel, o in GOOD.items():
        e = entries[rel]
        assert e["status"] == "done" and e["error"] is None and e["output"] == str(out / o)
        assert isinstance(e["loss"], float) and e["seconds"] > 0
    for rel, why in BAD.items():
        e = entries[rel]
        assert e["status"] == "failed" and why in e["error"] and e["output"] is None and e["loss"] is None

    # A rerun skips what exists; --overwrite redoes it.
    r = run_cli(*args)
    assert r.exit_code == 1
    rep = json.loads(report.read_text())
    assert (rep["done"], rep["skipped_existing"], rep["failed"]) == (0, 6, 4)
    assert {e["status"] for e in rep["images"] if e["image"] in GOOD} == {"exists"}
    r = run_cli(*args, "--overwrite")
    rep = json.loads(report.read_text())
    assert (rep["done"], rep["skipped_existing"], rep["failed"]) == (6, 0, 4)


def test_shared_mask_type_and_file(tiny_bundle: Path, tmp_path: Path) -> None:
    """--mask-type / --mask apply to every image; an --out inside --images is never read as input;
    temp files a killed run left for its outputs are removed."""
    rng = np.random.default_rng(2)
    images = tmp_path / "images"
    for rel in ("x.png", "y.jpeg", "n/z.webp"):
        _save(images / rel, _face(rng, 32, 32))
    out = images / "done"
    stale = out / "n" / f"{temp_prefix('z.png', dead_pid())}abc12345.tmp"  # a killed run's
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a png")
    base = ["batch", "--images", images, "--out", out, "--model", tiny_bundle, "--iterations", "1",
            "--no-progress"]  # fmt: skip
    r = run_cli(*base, "--mask-type", "center")
    assert r.exit_code == 0, r.output
    assert outputs(out) == {"x.png", "y.png", "n/z.png"}
    assert "3 images: 3 completed" in r.stderr
    mask = tmp_path / "m.png"
    _save(mask, _hole(16, 16))  # same aspect ratio: resized to each image
    r = run_cli(*base, "--mask", mask, "--overwrite")
    assert r.exit_code == 0, r.output
    assert "3 images: 3 completed" in r.stderr
    assert outputs(out) == {"x.png", "y.png", "n/z.png"}

    (tmp_path / "bad.png").write_bytes(b"nope")
    r = run_cli(*base, "--mask", tmp_path / "bad.png")
    assert r.exit_code == 1 and "bad.png" in r.stderr


@pytest.mark.parametrize(
    "extra",
    [
        [],  # no mask source
        ["--mask-type", "center", "--mask", "m.png"],
        ["--mask-type", "center", "--shard", "2/2"],
        ["--mask-type", "center", "--shard", "1/0"],
        ["--mask-type", "center", "--shard", "x"],
        ["--mask-type", "center", "--batch-size", "0"],
    ],
)
def test_usage_errors(tiny_bundle: Path, tmp_path: Path, extra: list[str]) -> None:
    r = run_cli("batch", "--images", tmp_path, "--out", tmp_path / "o", "--model", tiny_bundle, *extra)
    assert r.exit_code == 2, r.output
    assert not (tmp_path / "o").exists()


def test_shards_partition(folder: tuple[Path, Path], tiny_bundle: Path, tmp_path: Path) -> None:
    images, masks = folder
    jobs, failures = pair_files(images, masks)
    for n in (1, 2, 3, 4, 7):
        parts = [shard(jobs, i, n) for i in range(n)]
        assert sorted((j for p in parts for j in p), key=lambda j: j.rel) == jobs
        assert sum(len(p) for p in parts) == len(jobs)
        assert [shard(jobs, i, n) for i in range(n)] == parts  # deterministic
    assert parse_shard("1/3") == (1, 3)
    assert shard_from_env({"RANK": "2", "WORLD_SIZE": "4", "TORCHELASTIC_RUN_ID": "x"}) == (2, 4)
    assert shard_from_env({"RANK": "2", "WORLD_SIZE": "4"}) is None  # not torchrun
    assert shard_from_env({"RANK": "0", "WORLD_SIZE": "1"}) is None
    assert shard_from_env({}) is None

    # Two processes' worth of shards into one folder: together they do exactly the whole set once.
    out = tmp_path / "out"
    totals = []
    for i in range(2):
        rep = tmp_path / f"r{i}.json"
        r = run_cli("batch", "--images", images, "--masks", masks, "--out", out, "--model", tiny_bundle,
                    "--iterations", "1", "--shard", f"{i}/2", "--report", rep, "--no-progress",
                    "--aligned")  # fmt: skip
        assert r.exit_code in (0, 1), r.output
        totals.append(json.loads(rep.with_name(f"r{i}.shard{i}of2.json").read_text()))
    assert outputs(out) == set(GOOD.values())
    assert sum(t["done"] for t in totals) == len(GOOD) and sum(t["skipped_existing"] for t in totals) == 0
    assert sum(t["failed"] for t in totals) == len(BAD)
    seen = [e["image"] for t in totals for e in t["images"]]
    assert sorted(seen) == sorted(set(GOOD) | set(BAD) | {"notes.txt"})


def test_torchrun_env_shards(folder: tuple[Path, Path], tiny_bundle: Path, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    images, masks = folder
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "test")
    r = run_cli("batch", "--images", images, "--masks", masks, "--out", tmp_path / "out",
                "--model", tiny_bundle, "--iterations", "1", "--report", tmp_path / "rep.json",
                "--no-progress")  # fmt: skip
    assert r.exit_code in (0, 1), r.output
    rep = json.loads((tmp_path / "rep.rank1.json").read_text())
    jobs, failures = pair_files(images, masks)
    assert rep["total"] == len(shard(jobs, 1, 2)) + len(shard(failures, 1, 2))


def test_one_bad_item_does_not_sink_its_chunk(tiny_bundle: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """If the batched optimisation of a chunk raises, each image is retried alone."""
    rng = np.random.default_rng(3)
    images = tmp_path / "images"
    for i in range(4):
        _save(images / f"{i}.png", np.zeros((32, 32, 3), np.uint8) if i == 2 else _face(rng, 32, 32))
    completer = Completer(load_model(tiny_bundle), CompletionOptions(iterations=1))
    warp = complete_module.warp_to_model

    def picky(image, known, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if not image.any():
            raise MaskError("all black")
        return warp(image, known, *args, **kwargs)

    monkeypatch.setattr(complete_module, "warp_to_model", picky)
    jobs, failures = pair_files(images)
    assert all(isinstance(j, Job) and j.mask is None for j in jobs) and not failures
    rep = run_batch(completer, jobs, tmp_path / "out", batch_size=4, mask_type="center", progress=False)
    assert (rep.done, rep.failed) == (3, 1) and rep.failures == [("2.png", "all black")]
    assert outputs(tmp_path / "out") == {"0.png", "1.png", "3.png"}


def test_sigkill_and_rerun(tiny_bundle: Path, tmp_path: Path) -> None:
    """Kill a real `completion batch` with SIGKILL once outputs appear; a rerun finishes the set with
    every output once, each a valid PNG, and no temp files left."""
    rng = np.random.default_rng(4)
    images, out = tmp_path / "images", tmp_path / "out"
    expected = set()
    for i in range(24):
        rel = f"d{i % 3}/img{i:02d}.png" if i % 2 else f"img{i:02d}.jpg"
        _save(images / rel, _face(rng, 32, 32))
        expected.add(str(Path(rel).with_suffix(".png").as_posix()))
    cmd = [sys.executable, "-m", "completion", "batch", "--images", str(images), "--out", str(out),
           "--mask-type", "center", "--model", str(tiny_bundle), "--iterations", "150", "--batch-size", "2",
           "--no-progress"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and any(p.suffix == ".png" for p in out.rglob("*")):
                break
            time.sleep(0.02)
        assert proc.poll() is None, "batch ended before it could be killed: " + proc.stderr.read().decode()
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    before = {p for p in outputs(out) if p.endswith(".png") and not Path(p).name.startswith(".")}
    assert before and before < expected
    for rel in before:  # whatever the kill left is whole
        with Image.open(out / rel) as im:
            im.load()

    # A temp file as if the kill had landed mid-write (the kill above may or may not have left one).
    pending = sorted(expected - before)[0]
    (out / pending).parent.mkdir(parents=True, exist_ok=True)
    (out / pending).parent.joinpath(f"{temp_prefix(pending, dead_pid())}k1ll3d00.tmp").write_bytes(
        b"\x89PNG half"
    )

    report = tmp_path / "report.json"
    r = run_cli(*cmd[3:], "--report", report)
    assert r.exit_code == 0, r.output
    assert outputs(out) == expected  # every output exactly once, nothing else (no .*.tmp)
    for rel in expected:
        with Image.open(out / rel) as im:
            im.load()
            assert im.size == (32, 32) and im.format == "PNG"
    rep = json.loads(report.read_text())
    assert rep["skipped_existing"] == len(before) and rep["done"] == len(expected) - len(before)


def test_unwritable_output_is_one_failure(tiny_bundle: Path, tmp_path: Path) -> None:
    """An output that cannot be written fails that image only; the others are saved."""
    rng = np.random.default_rng(5)
    images, out = tmp_path / "images", tmp_path / "out"
    for rel in ("a.png", "n/b.png", "c.png"):
        _save(images / rel, _face(rng, 32, 32))
    out.mkdir()
    (out / "n").write_text("a file where the folder n/ should be")
    completer = Completer(load_model(tiny_bundle), CompletionOptions(iterations=1))
    jobs, _ = pair_files(images)
    rep = run_batch(completer, jobs, out, batch_size=2, mask_type="center", progress=False,
                    report=tmp_path / "r.json")  # fmt: skip
    assert (rep.done, rep.failed) == (2, 1)
    assert rep.failures[0][0] == "n/b.png" and "cannot write" in rep.failures[0][1]
    assert outputs(out) == {"a.png", "c.png", "n"}
    assert json.loads((tmp_path / "r.json").read_text())["failed"] == 1
