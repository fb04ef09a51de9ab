"""Second hardening round (issue 15): data safety, packaging, messages. Through the CLI where a user
meets it; tiny random-weight networks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from completion.bundle import save_model
from completion.cli import main
from completion.config import ModelConfig
from completion.models import Discriminator, Generator


def _bundle(path: Path, size: int = 64) -> Path:
    torch.manual_seed(0)
    cfg = ModelConfig(image_size=size, ngf=8, ndf=8)
    save_model(path, cfg, Generator(cfg).eval(), Discriminator(cfg).eval())
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _bundle(tmp_path_factory.mktemp("models") / "m64.pt")


def cli(*args: object):  # noqa: ANN201
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line(r, code: int = 1) -> str:  # noqa: ANN001
    """Exit `code` with no traceback; returns the first stderr line."""
    assert r.exit_code == code, (r.exit_code, r.output, r.exception)
    assert "Traceback" not in r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    return lines[0] if lines else ""


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# -- 1: train-encoder never replaces its input model unless --out names it ----------------------


ENC = ("--steps", "1", "--batch-size", "2", "--device", "cpu", "--no-progress")


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


# -- 6: seeds are checked at the option, in every command that has one ----------------------------


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


# -- 4: with a separate --masks folder every file under --images is an image ----------------------


def _png(path: Path, value: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(abs(hash(path.name)) % 2**32)
    if value is None:
        arr = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    else:
        arr = np.zeros((64, 64), np.uint8)
        arr[16:48, 16:48] = value
    Image.fromarray(arr).save(path)
    return path


def test_separate_masks_folder_has_no_lama_naming_rule(tmp_path: Path) -> None:
    from completion.batch import pair_files

    images, masks = tmp_path / "images", tmp_path / "masks"
    _png(images / "portrait.png")
    _png(images / "portrait_masked.png")  # a photo, not portrait.png's mask
    _png(images / "solo_mask.png")  # a photo with no mask of its own: counted as a failure
    _png(masks / "portrait.png", 255)
    _png(masks / "portrait_masked.png", 255)
    jobs, failures = pair_files(images, masks)
    assert [(j.rel, j.mask, j.output) for j in jobs] == [
        ("portrait.png", masks / "portrait.png", "portrait.png"),
        ("portrait_masked.png", masks / "portrait_masked.png", "portrait_masked.png"),
    ]
    assert [(f.rel, f.error) for f in failures] == [("solo_mask.png", "no mask found")]
    # --masks = --images is LaMa's layout, where the rule applies.
    jobs, failures = pair_files(images, images)
    assert [(j.rel, j.mask.name) for j in jobs] == [("portrait.png", "portrait_masked.png")]


# -- 10: an unwritable --out is found before any model loads or optimisation runs -----------------


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


# -- 12: messages that point somewhere useful -------------------------------------------------------


def test_batch_advice_names_no_option_batch_lacks(model: Path, tmp_path: Path) -> None:
    images = tmp_path / "in"
    Image.fromarray(np.full((150, 200, 3), 90, np.uint8)).save(_png(images / "flat.png"))  # no face
    r = cli("batch", "--images", images, "--mask-type", "center", "--out", tmp_path / "o", "--model", model,
            "--iterations", "1", "--no-progress")  # fmt: skip
    assert r.exit_code == 1 and "no face found" in r.stderr
    assert r.stderr.count("--box") == r.stderr.count("completion complete --box") > 0, r.stderr


def test_masks_help_lists_every_type() -> None:
    from completion.masks import _SIMPLE

    r = cli("masks", "--help")
    assert r.exit_code == 0 and "below" not in r.output
    for name in (*_SIMPLE, "random:F", "grid:STEP", "lowres:FACTOR"):
        assert name in r.output, name


def test_one_image_is_singular(model: Path, face: Path, tmp_path: Path) -> None:
    from completion.text import plural

    assert (plural(1, "image"), plural(2, "image"), plural(0, "image")) == ("1 image", "2 images", "0 images")
    r = cli("batch", "--images", face.parent, "--mask-type", "center", "--out", tmp_path / "o",
            "--model", model, "--iterations", "1", "--no-progress", "--aligned")  # fmt: skip
    # "1 images:" is the bug; "… 95.11 images/s" later in the line is the rate, not a count.
    assert r.exit_code == 0 and "1 image: 1 completed" in r.stderr and "1 images:" not in r.stderr, (
        r.exit_code,
        r.stderr,
        r.exception,
    )


def test_training_names_the_files_it_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from completion.data import FaceData

    good = [_png(tmp_path / f"f{i}.png") for i in range(3)]
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    with caplog.at_level("WARNING", logger="completion"):
        data = FaceData(sorted([*good, bad]), 32, "none")
    assert data.skipped == 1 and len(data.cache) == 3
    assert any(str(bad) in m and "not a readable image" in m for m in caplog.messages), caplog.messages
    assert any("skipped 1 unreadable image of 4" in m for m in caplog.messages), caplog.messages


def test_quiet_hides_progress_bars(model: Path, face: Path, tmp_path: Path) -> None:
    args = ["batch", "--images", face.parent, "--mask-type", "center", "--model", model, "--iterations", "1",
            "--aligned"]  # fmt: skip
    loud = cli(*args, "--out", tmp_path / "a")
    assert loud.exit_code == 0 and "batch: 100%" in loud.stderr, loud.stderr
    quiet = cli("-q", *args, "--out", tmp_path / "b")
    assert quiet.exit_code == 0 and quiet.stderr == "", quiet.stderr


def test_sample_on_a_checkpoint_points_to_export(tmp_path: Path) -> None:
    from completion.bundle import CHECKPOINT_VERSION, FORMAT, write_file

    ckpt = tmp_path / "checkpoint.pt"
    write_file(ckpt, {"format": FORMAT, "kind": "checkpoint", "version": CHECKPOINT_VERSION})
    first = one_line(cli("sample", "--model", ckpt, "--out", tmp_path / "g.png"), 1)
    assert "training checkpoint" in first and f"completion export {ckpt}" in first
    assert not (tmp_path / "g.png").exists()


def test_readme_tables_have_one_header_row() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    lines = readme.splitlines()
    for a, b in zip(lines, lines[1:], strict=False):
        assert not (a.startswith("|") and a == b), a


# -- 9: batch takes what complete takes, and names every path it leaves out ------------------------


def test_batch_names_every_path_it_leaves_out(model: Path, tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    import json
    import os

    images, elsewhere = tmp_path / "images", tmp_path / "elsewhere"
    rgb = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    images.mkdir()
    Image.fromarray(rgb).save(images / "scan.tif")
    Image.fromarray(rgb).convert("P").save(images / "anim.gif")
    _png(images / "plain.png")
    _png(elsewhere / "linked.png")
    os.symlink(elsewhere, images / "linked_folder")  # followed
    os.symlink(images, images / "loop")  # a second way into the images folder: named, not walked
    os.symlink(tmp_path / "gone.png", images / "dangling.png")
    (images / "notes.txt").write_text("not an image")
    out, report = tmp_path / "out", tmp_path / "r.json"
    with caplog.at_level("INFO", logger="completion"):
        r = cli("batch", "--images", images, "--mask-type", "center", "--out", out, "--model", model,
                "--iterations", "1", "--aligned", "--no-progress", "--report", report)  # fmt: skip
    assert r.exit_code == 1, r.output
    done = {p.relative_to(out).as_posix() for p in out.rglob("*.png")}
    assert done == {"scan.png", "anim.png", "plain.png", "linked_folder/linked.png"}
    entries = {e["image"]: e for e in json.loads(report.read_text())["images"]}
    assert entries["dangling.png"]["status"] == "failed" and "dangling" in entries["dangling.png"]["error"]
    assert entries["notes.txt"]["status"] == "ignored" and entries["loop"]["status"] == "ignored"
    rep = json.loads(report.read_text())
    assert (rep["total"], rep["done"], rep["failed"], rep["ignored"]) == (5, 4, 1, 2)
    assert "4 completed, 0 already done, 1 failed; 2 other paths ignored" in r.stderr
    logged = "\n".join(caplog.messages)
    for name in ("dangling.png", "notes.txt", "loop"):
        assert str(images / name) in logged, (name, logged)


# -- 8: outputs keep the pixels outside the hole (exactly where the format allows) and metadata --


def _photo_with_metadata(path: Path) -> Path:
    """A 64x64 PNG with an sRGB ICC profile, EXIF (camera make, orientation 6 = turn 90 degrees) and
    300 dpi."""
    from PIL import ImageCms

    path.parent.mkdir(parents=True, exist_ok=True)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "TestCam"  # Make
    exif[0x0112] = 6
    rgb = np.random.default_rng(5).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    rgb[:, :8] = 0  # a dark band on the left: after the EXIF turn it lies along the top
    Image.fromarray(rgb).save(path, icc_profile=icc, exif=exif.tobytes(), dpi=(300, 300))
    return path


@pytest.mark.parametrize("suffix", [".png", ".webp", ".jpg", ".tif"])
def test_outputs_keep_pixels_and_metadata(suffix: str, model: Path, tmp_path: Path) -> None:
    from completion.imageio import load_rgb
    from completion.masks import make_mask

    src = _photo_with_metadata(tmp_path / "in" / "photo.png")
    out = tmp_path / f"o{suffix}"
    one_line(cli("complete", "--image", src, "--mask-type", "center", "--out", out, "--model", model,
                 "--iterations", "1"), 0)  # fmt: skip
    before, after = load_rgb(src), load_rgb(out)
    assert before[:8].max() == 0  # the orientation was applied on reading
    known = make_mask("center", 64, 64)
    diff = np.abs(before.astype(int) - after.astype(int))[known]
    if suffix == ".jpg":
        # Quality 95, 4:4:4: on this noise (JPEG's worst case) well under Pillow's default 75, 4:2:0.
        Image.fromarray(before).save(tmp_path / "default.jpg")
        worst = np.abs(before.astype(int) - load_rgb(tmp_path / "default.jpg").astype(int))[known]
        assert diff.mean() < 0.3 * worst.mean() and diff.max() < 0.5 * worst.max(), (diff.max(), worst.max())
    else:
        assert diff.max() == 0  # bit-identical outside the hole
    with Image.open(src) as a, Image.open(out) as b:
        assert b.info.get("icc_profile") == a.info["icc_profile"]
        exif = b.getexif()
        assert exif.get(0x010F) == "TestCam" and exif.get(0x0112, 1) == 1  # upright now
        if suffix != ".webp":
            assert round(float(b.info["dpi"][0])) == 300


def test_quality_option(model: Path, tmp_path: Path) -> None:
    src = _photo_with_metadata(tmp_path / "in" / "photo.png")
    sizes = {}
    for q in ("30", "95"):
        out = tmp_path / f"o{q}.jpg"
        one_line(cli("complete", "--image", src, "--mask-type", "center", "--out", out, "--model", model,
                     "--iterations", "1", "--quality", q), 0)  # fmt: skip
        sizes[q] = out.stat().st_size
    assert sizes["30"] < sizes["95"]
    one_line(cli("complete", "--image", src, "--mask-type", "center", "--out", tmp_path / "x.jpg",
                 "--model", model, "--quality", "0"), 2)  # fmt: skip
    assert not (tmp_path / "x.jpg").exists()


# -- 3: a run removes only temp files that are provably abandoned ----------------------------------


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


# -- 11: RANK/WORLD_SIZE shard only under torchrun; shards never share a report file ---------------


def test_rank_outside_torchrun_does_not_shard(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import json

    images = tmp_path / "in"
    for i in range(4):
        _png(images / f"f{i}.png")
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
        _png(images / f"f{i}.png")
    for i in range(2):
        r = cli("batch", "--images", images, "--mask-type", "center", "--out", tmp_path / "o", "--model",
                model, "--iterations", "1", "--aligned", "--no-progress", "--report", tmp_path / "r.json",
                "--shard", f"{i}/2")  # fmt: skip
        assert r.exit_code == 0, r.output
    reports = sorted(p.name for p in tmp_path.glob("r*.json"))
    assert reports == ["r.shard0of2.json", "r.shard1of2.json"]
    assert sum(json.loads((tmp_path / n).read_text())["done"] for n in reports) == 4


# -- start-up: the completion path imports only what it uses ----------------------------------------


def test_complete_imports_neither_torchvision_nor_dynamo(model: Path, face: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys\nfrom completion.cli import main\n"
        f"main(['complete', '--image', {str(face)!r}, '--mask-type', 'center', '--out', "
        f"{str(tmp_path / 'o.png')!r}, '--model', {str(model)!r}, '--iterations', '2'],\n"
        "     standalone_mode=False)\n"
        "print(sorted(m for m in sys.modules if m.startswith(('torchvision', 'torch._dynamo'))))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "o.png").exists()


def test_zadam_is_torch_adam_bit_for_bit() -> None:
    from completion.complete import ZAdam

    g = torch.Generator().manual_seed(0)
    z0 = torch.rand(5, 100, generator=g) * 2 - 1
    grads = [torch.randn(5, 100, generator=g) * 10 ** (k % 4 - 2) for k in range(30)]
    a, b = z0.clone().requires_grad_(True), z0.clone().requires_grad_(True)
    ours, theirs = ZAdam(a, 0.01, (0.9, 0.999)), torch.optim.Adam([b], lr=0.01, betas=(0.9, 0.999))
    for grad in grads:
        for opt, z in ((ours, a), (theirs, b)):
            opt.zero_grad(set_to_none=True)
            (z * grad).sum().backward()
            opt.step()
            with torch.no_grad():
                z.clamp_(-1, 1)
        assert torch.equal(a, b)


def test_grid_matches_torchvision() -> None:
    from torchvision.utils import make_grid as tv_grid

    from completion.grid import make_grid

    x = torch.rand(7, 3, 8, 6) * 2 - 1
    for nrow in (1, 3, 7, 10):
        assert torch.equal(make_grid(x, nrow=nrow, padding=2, pad_value=1.0),
                           tv_grid(x, nrow=nrow, padding=2, pad_value=1.0))  # fmt: skip


# -- 5: --resume finds its data from anywhere, takes a moved --data, and says what it overrides ----


def test_resume_from_elsewhere_with_moved_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import shutil

    from completion.bundle import read_file

    work = tmp_path / "work"
    for i in range(8):
        _png(work / "faces" / f"f{i}.png")
    monkeypatch.chdir(work)
    base = ("--image-size", "32", "--ngf", "4", "--ndf", "4", "--batch-size", "4", "--device", "cpu",
            "--no-progress", "--precision", "fp32", "--no-ema")  # fmt: skip
    one_line(cli("train", "--data", "faces", "--out", tmp_path / "run", "--epochs", "1", *base), 0)
    saved = read_file(tmp_path / "run" / "checkpoint.pt", "checkpoint")["options"]["data"]
    assert saved == str(work / "faces")  # absolute, though typed relative

    monkeypatch.chdir(tmp_path)  # another working directory: the stored path still works
    with caplog.at_level("INFO", logger="completion"):
        r = cli("train", "--out", tmp_path / "run", "--resume", "--epochs", "2", "--lr", "0.5",
                "--batch-size", "2", "--no-progress")  # fmt: skip
    one_line(r, 0)
    line = next(m for m in caplog.messages if m.startswith("resuming"))
    assert "--lr 0.5 (checkpoint: 0.0002)" in line and "--batch-size 2 (checkpoint: 4)" in line

    shutil.move(work / "faces", tmp_path / "moved")  # the data moved: give it anew
    caplog.clear()
    with caplog.at_level("INFO", logger="completion"):
        r = cli("train", "--out", tmp_path / "run", "--resume", "--epochs", "3", "--data", "moved",
                "--no-progress")  # fmt: skip
    one_line(r, 0)
    line = next(m for m in caplog.messages if m.startswith("resuming"))
    assert str(tmp_path / "moved") in line and "no given option differs" in line
    opts = read_file(tmp_path / "run" / "checkpoint.pt", "checkpoint")["options"]
    assert opts["data"] == str(tmp_path / "moved") and opts["batch_size"] == 4
