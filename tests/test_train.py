"""Training: checkpoints, exact resume (between and within epochs), divergence, export, samples."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import completion.device as device_mod
import completion.train as train_mod
from completion.bundle import load_model, read_file
from completion.config import ModelConfig
from completion.errors import ModelFileError, TrainingDiverged
from completion.train import TrainOptions, checkpoint_path, export, load_checkpoint, train

CFG = ModelConfig(image_size=32, ngf=8, ndf=8)
BATCH = 8
PER_EPOCH = 40 // BATCH  # tiny_faces holds 40 readable images


def options(data: Path, out: Path, epochs: int, **kw) -> TrainOptions:
    return TrainOptions(
        data=str(data),
        out=str(out),
        epochs=epochs,
        batch_size=BATCH,
        device="cpu",
        checkpoint_minutes=0,
        progress=False,
        **kw,
    )


def assert_same_weights(a: dict, b: dict) -> None:
    for net in ("generator", "discriminator", "generator_ema"):
        sa, sb = a[net], b[net]
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"{net}.{k} differs"


@pytest.fixture(scope="module")
def straight_run(tiny_faces: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two epochs in one go: the reference every resume test must reproduce bit for bit."""
    out = tmp_path_factory.mktemp("straight")
    return train(CFG, options(tiny_faces, out, epochs=2))


def test_checkpoint_round_trip(straight_run: Path) -> None:
    ckpt = read_file(straight_run, "checkpoint")
    assert straight_run == checkpoint_path(straight_run.parent)
    assert ModelConfig.from_dict(ckpt["config"]) == CFG
    assert ckpt["state"]["epoch"] == 2 and ckpt["state"]["step"] == 0
    assert ckpt["state"]["images_seen"] == 2 * PER_EPOCH * BATCH
    for opt in ("opt_g", "opt_d"):
        assert ckpt[opt]["state"], f"{opt} has no optimiser state"
        assert all("exp_avg" in s for s in ckpt[opt]["state"].values())
    hist = ckpt["state"]["history"]
    assert len(hist["loss_d"]) == 2 and all(math.isfinite(v) for v in hist["loss_d"])
    # A checkpoint is not a model bundle.
    with pytest.raises(ModelFileError, match="checkpoint"):
        read_file(straight_run, "model")


@pytest.mark.parametrize(("section", "value"), [("opt_g", None), ("opt_d", {"state": {}}), ("options", [])])
def test_checkpoint_sections_of_the_wrong_kind_are_named(
    straight_run: Path, tmp_path: Path, section: str, value: object
) -> None:
    ckpt = read_file(straight_run, "checkpoint")
    ckpt[section] = value
    bad = tmp_path / "checkpoint.pt"
    torch.save(ckpt, bad)
    with pytest.raises(ModelFileError, match=f"checkpoint.pt: checkpoint has no valid {section!r}"):
        load_checkpoint(bad)


def test_sample_grid_per_epoch(straight_run: Path) -> None:
    out = straight_run.parent
    for epoch in (1, 2):
        grid = out / f"samples_epoch_{epoch:03d}.png"
        assert grid.is_file()
        with Image.open(grid) as im:
            assert im.format == "PNG"
            assert im.size == (8 * 34 + 2, 8 * 34 + 2)  # 8x8 faces of 32 px, 2 px padding
    assert not (out / "samples_epoch_003.png").exists()


def test_resume_between_epochs_is_exact(tiny_faces: Path, tmp_path: Path, straight_run: Path) -> None:
    train(CFG, options(tiny_faces, tmp_path, epochs=1))
    assert read_file(checkpoint_path(tmp_path), "checkpoint")["state"]["epoch"] == 1
    # Resume keeps the saved data/optimisation options even if others are passed.
    resumed = train(CFG, options(tiny_faces, tmp_path, epochs=2, lr=1.0, seed=99), resume=True)
    a, b = read_file(straight_run, "checkpoint"), read_file(resumed, "checkpoint")
    assert_same_weights(a, b)
    assert a["state"]["images_seen"] == b["state"]["images_seen"]
    for opt in ("opt_g", "opt_d"):
        for i, s in a[opt]["state"].items():
            for k, v in s.items():
                assert torch.equal(v, b[opt]["state"][i][k])


def interrupt_after(monkeypatch: pytest.MonkeyPatch, calls: int) -> None:
    """Make the `calls`-th train_step raise KeyboardInterrupt (as Ctrl-C would) before it runs."""
    real = train_mod.train_step
    n = 0

    def wrapper(*args, **kwargs):
        nonlocal n
        n += 1
        if n == calls:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_mod, "train_step", wrapper)


def test_resume_mid_epoch_is_exact(
    tiny_faces: Path, tmp_path: Path, straight_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    interrupt_after(monkeypatch, PER_EPOCH + 3)  # Ctrl-C during epoch 2, after 2 of its batches
    with pytest.raises(KeyboardInterrupt):
        train(CFG, options(tiny_faces, tmp_path, epochs=2))
    st = read_file(checkpoint_path(tmp_path), "checkpoint")["state"]
    assert (st["epoch"], st["step"]) == (1, 2)
    assert st["images_seen"] == (PER_EPOCH + 2) * BATCH
    monkeypatch.undo()
    resumed = train(CFG, options(tiny_faces, tmp_path, epochs=2), resume=True)
    a, b = read_file(straight_run, "checkpoint"), read_file(resumed, "checkpoint")
    assert_same_weights(a, b)
    assert b["state"]["images_seen"] == a["state"]["images_seen"]


def test_interrupt_in_first_epoch_then_resume(
    tiny_faces: Path, tmp_path: Path, straight_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        train(CFG, options(tiny_faces, tmp_path, epochs=2))
    assert read_file(checkpoint_path(tmp_path), "checkpoint")["state"]["step"] == 1
    monkeypatch.undo()
    resumed = train(CFG, options(tiny_faces, tmp_path, epochs=2), resume=True)
    assert_same_weights(read_file(straight_run, "checkpoint"), read_file(resumed, "checkpoint"))


def test_timed_checkpoints_mid_epoch(
    tiny_faces: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a tiny checkpoint interval, a checkpoint is written after every batch."""
    real = train_mod.train_step
    steps_on_disk: list[int] = []

    def wrapper(*args, **kwargs):
        ckpt = checkpoint_path(tmp_path)
        if ckpt.exists():
            steps_on_disk.append(read_file(ckpt, "checkpoint")["state"]["step"])
        return real(*args, **kwargs)

    monkeypatch.setattr(train_mod, "train_step", wrapper)
    train(CFG, dataclasses.replace(options(tiny_faces, tmp_path, epochs=1), checkpoint_minutes=1e-9))
    assert steps_on_disk == list(range(1, PER_EPOCH))


def test_nan_loss_raises_and_keeps_checkpoint(
    tiny_faces: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = train_mod.train_step
    n = 0
    before: dict[str, bytes] = {}

    def wrapper(*args, **kwargs):
        nonlocal n
        n += 1
        m = real(*args, **kwargs)
        if n > PER_EPOCH:  # every step of epoch 2
            before.setdefault("ckpt", checkpoint_path(tmp_path).read_bytes())
            m = {**m, "loss_d": torch.tensor(float("nan"))}
        return m

    monkeypatch.setattr(train_mod, "train_step", wrapper)
    with pytest.raises(TrainingDiverged, match="non-finite"):
        train(CFG, options(tiny_faces, tmp_path, epochs=2))
    ckpt = checkpoint_path(tmp_path)
    assert ckpt.read_bytes() == before["ckpt"]
    st = read_file(ckpt, "checkpoint")["state"]
    assert (st["epoch"], st["step"]) == (1, 0)
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_export_writes_model_bundle(straight_run: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "model.pt"
    export(straight_run, bundle)
    model = load_model(bundle)
    assert model.config == CFG
    for key in ("dataset", "image_count", "epochs", "images_seen", "wall_seconds", "device"):
        assert key in model.meta, key
    assert model.meta["image_count"] == 40
    assert model.meta["epochs"] == pytest.approx(2.0)
    assert model.meta["images_seen"] == 2 * PER_EPOCH * BATCH
    assert model.meta["device"] == "cpu x1"
    assert len(model.meta["history"]["loss_g"]) == 2

    raw = torch.load(bundle, weights_only=True)
    assert raw["kind"] == "model"
    assert not {"opt_g", "opt_d", "state", "options"} & raw.keys()
    assert bundle.stat().st_size < straight_run.stat().st_size

    # The bundle's generator (stored in fp16) is the checkpoint's averaged G, its batch-norm
    # statistics re-estimated.
    ckpt = read_file(straight_run, "checkpoint")
    G = train_mod.Generator(CFG)
    G.load_state_dict(ckpt["generator_ema"])
    train_mod.recompute_batch_norm(G, CFG.nz)
    z = torch.rand(4, CFG.nz, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        np.testing.assert_allclose(model.generator(z).numpy(), G(z).numpy(), atol=0.05)
    assert not any(p.requires_grad for p in model.generator.parameters())


def test_too_few_images_for_a_batch(tiny_faces: Path, tmp_path: Path) -> None:
    opts = dataclasses.replace(options(tiny_faces, tmp_path, epochs=1), batch_size=64)
    with pytest.raises(ValueError, match="fewer than one batch"):
        train(CFG, opts)


def test_ema_update_is_a_lerp_of_parameters() -> None:
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    wa, wb = a.weight.detach().clone(), b.weight.detach().clone()
    train_mod.ema_update(a, b, 0.9)
    torch.testing.assert_close(a.weight, 0.9 * wa + 0.1 * wb)


def test_ema_decay_warms_up_then_caps() -> None:
    assert train_mod.ema_decay(0) == pytest.approx(0.1)
    assert train_mod.ema_decay(90) == pytest.approx(0.91)
    assert train_mod.ema_decay(10**6) == train_mod.EMA_MAX_DECAY


def test_recompute_batch_norm_matches_batch_statistics() -> None:
    torch.manual_seed(0)
    g = train_mod.Generator(CFG)
    with torch.no_grad():  # weights whose statistics differ from the freshly initialised ones
        for p in g.parameters():
            p.mul_(3.0)
    train_mod.recompute_batch_norm(g, CFG.nz, batches=8)
    assert not g.training
    z = torch.rand(512, CFG.nz, generator=torch.Generator().manual_seed(5)) * 2 - 1
    with torch.no_grad():
        eval_out = g(z)
        g.train()
        train_out = g(z)
    # Eval mode with re-estimated statistics computes what train mode computes on a large batch.
    assert (eval_out - train_out).abs().mean() < 0.02


def test_checkpoint_keeps_an_averaged_g_and_export_ships_it(straight_run: Path, tmp_path: Path) -> None:
    ckpt = read_file(straight_run, "checkpoint")
    ema, raw = ckpt["generator_ema"], ckpt["generator"]
    assert not torch.equal(ema["main.0.weight"], raw["main.0.weight"])
    export(straight_run, tmp_path / "m.pt")
    shipped = load_model(tmp_path / "m.pt").generator.state_dict()
    torch.testing.assert_close(shipped["main.0.weight"], ema["main.0.weight"].half().float())
    assert read_file(tmp_path / "m.pt", "model")["meta"]["generator"] == "ema"


def test_no_ema_run_ships_the_raw_generator(tiny_faces: Path, tmp_path: Path) -> None:
    path = train(CFG, options(tiny_faces, tmp_path, epochs=1, ema=False))
    assert read_file(path, "checkpoint")["generator_ema"] is None
    export(path, tmp_path / "m.pt")
    assert read_file(tmp_path / "m.pt", "model")["meta"]["generator"] == "raw"


def test_keep_every_keeps_epoch_checkpoints(tiny_faces: Path, tmp_path: Path) -> None:
    train(CFG, options(tiny_faces, tmp_path, epochs=2, keep_every=2))
    assert [p.name for p in sorted(tmp_path.glob("checkpoint_epoch_*.pt"))] == ["checkpoint_epoch_002.pt"]


@pytest.mark.parametrize(
    "cpuinfo, native",
    [
        ("flags\t\t: fpu sse avx2 avx512f avx512_bf16\n", True),
        ("flags\t\t: fpu amx_bf16 amx_tile\n", True),
        ("Features\t: fp asimd bf16\n", True),
        ("flags\t\t: fpu sse avx2 fma avx512f\n", False),
        ("", False),
    ],
)
def test_native_bf16_read_from_cpu_flags(cpuinfo: str, native: bool) -> None:
    assert device_mod.cpu_has_native_bf16(cpuinfo) is native


def test_bf16_refused_without_native_units_and_auto_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setattr(device_mod, "cpu_has_native_bf16", lambda: False)
    with pytest.raises(ValueError, match="no native bfloat16"):
        device_mod.resolve_precision("bf16", cpu)
    assert device_mod.resolve_precision("auto", cpu) == "fp32"
    monkeypatch.setattr(device_mod, "cpu_has_native_bf16", lambda: True)
    assert device_mod.resolve_precision("auto", cpu) == "bf16"
    assert device_mod.resolve_precision("fp32", cpu) == "fp32"


def test_resume_keeps_keep_every_and_precision_unless_given(tiny_faces: Path, tmp_path: Path) -> None:
    train(CFG, options(tiny_faces, tmp_path, epochs=1, keep_every=1, precision="fp32"))
    # Resumed without naming them (as `completion train --resume --epochs 2` does): they carry over.
    train(CFG, options(tiny_faces, tmp_path, epochs=2), resume=True)
    ckpt = read_file(checkpoint_path(tmp_path), "checkpoint")
    assert ckpt["options"]["keep_every"] == 1 and ckpt["options"]["precision"] == "fp32"
    assert (tmp_path / "checkpoint_epoch_002.pt").exists()
    # Named again: the new value wins.
    train(CFG, options(tiny_faces, tmp_path, epochs=3, keep_every=0), resume=True, given={"keep_every"})
    assert not (tmp_path / "checkpoint_epoch_003.pt").exists()
