"""Growing a model to twice its size: shared layers copied, the fade starts at the small model's
pictures, training through the fade resumes exactly, and the result is a plain model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from completion.bundle import load_model, read_file, save_model
from completion.config import ModelConfig
from completion.grow import (
    FadeD,
    FadeG,
    _old_picture,
    bridges,
    distil,
    fade_alpha,
    grown_config,
    seed_from_small,
)
from completion.models import Discriminator, Generator
from completion.train import TrainOptions, export, train

SMALL = ModelConfig(image_size=32, ngf=16, ndf=16)


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(3)
    G, D = Generator(SMALL), Discriminator(SMALL)
    # Batch norm statistics away from (0, 1), so copying them is checked too; an output layer that
    # makes the picture vary (an initialised G is nearly constant).
    with torch.no_grad():
        G.main[-2].weight.mul_(30)
        for m in [*G.modules(), *D.modules()]:
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("small") / "small.pt"
    save_model(path, SMALL, G, D)
    return path


def grown_nets(small_path: Path) -> tuple[FadeG, FadeD, Generator, Discriminator]:
    small = load_model(small_path)
    cfg = grown_config(small.config)
    G, D = Generator(cfg), Discriminator(cfg)
    seed_from_small(G, D, small.generator, small.discriminator)
    b = bridges(small.generator, small.discriminator)
    return FadeG(G, b["g_rgb"]).eval(), FadeD(D, b["d_rgb"]).eval(), small.generator, small.discriminator


def test_grown_config_halves_the_widths() -> None:
    assert grown_config(SMALL) == ModelConfig(image_size=64, ngf=8, ndf=8)
    with pytest.raises(ValueError, match="even"):
        grown_config(ModelConfig(image_size=32, ngf=15, ndf=16))


def test_fade_starts_at_the_small_models_pictures_and_scores(small_model: Path) -> None:
    fg, fd, small_g, small_d = grown_nets(small_model)
    fg.alpha = fd.alpha = 0.0
    z = torch.rand(5, SMALL.nz) * 2 - 1
    x = torch.rand(5, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(fg(z), F.interpolate(small_g(z), scale_factor=2, mode="bilinear"), atol=1e-6)
        assert torch.allclose(fd(x), small_d(F.avg_pool2d(x, 2)), atol=1e-5)
        fg.alpha = fd.alpha = 1.0  # then the plain grown networks
        assert torch.equal(fg(z), fg.G(z))
        assert torch.equal(fd(x), fd.D(x))
        fg.alpha = 0.5
        half = fg(z)
    assert not torch.allclose(half, fg.G(z).detach())


def test_bridges_are_buffers_not_trained(small_model: Path) -> None:
    fg, fd, _, _ = grown_nets(small_model)
    assert {n for n, _ in fg.named_parameters()} == {f"G.{n}" for n, _ in fg.G.named_parameters()}
    fd.requires_grad_(False)
    fd.requires_grad_(True)  # what train_step does to D: must not make the bridge trainable
    assert all(not b.requires_grad for b in fd.buffers())


def test_distil_fits_the_new_blocks_to_the_small_model(small_model: Path) -> None:
    fg, fd, small_g, small_d = grown_nets(small_model)
    G, D = fg.G, fd.D
    err = distil(
        G, D, fg.g_rgb, fd.d_rgb, lambda gen: torch.rand(8, 3, 64, 64, generator=gen) * 2 - 1, 150, 8
    )
    assert err["g"] < 0.5 and err["d"] < 0.5
    # Fitted, the plain grown G paints nearly the picture of its own lower layers through the small
    # model's last layer, enlarged (what the fade starts from).
    z = torch.rand(16, SMALL.nz, generator=torch.Generator().manual_seed(5)) * 2 - 1
    with torch.no_grad():
        _, target = _old_picture(G, fg.g_rgb, z)
        gap = (G(z) - target).abs().mean()
    assert gap < 0.5 * target.std()


def test_fade_alpha_ramps() -> None:
    assert fade_alpha(0, 100) == 0.0
    assert fade_alpha(50, 100) == 0.5
    assert fade_alpha(500, 100) == 1.0
    assert fade_alpha(7, 0) == 1.0


def test_grown_training_resumes_exactly_and_exports_a_plain_model(
    small_model: Path, tiny_faces: Path, tmp_path: Path
) -> None:
    cfg = grown_config(SMALL)

    def opts(out: Path, epochs: int) -> TrainOptions:
        return TrainOptions(
            data=str(tiny_faces), out=str(out), epochs=epochs, batch_size=8, device="cpu",
            checkpoint_minutes=0, progress=False, grow_from=str(small_model), fade_images=60,
        )  # fmt: skip

    straight = train(cfg, opts(tmp_path / "a", 2))
    train(cfg, opts(tmp_path / "b", 1))
    resumed = train(cfg, opts(tmp_path / "b", 2), resume=True)
    a, b = read_file(straight, "checkpoint"), read_file(resumed, "checkpoint")
    for net in ("generator", "discriminator", "generator_ema"):
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), f"{net}.{k} differs after resume"
    # The shared layers moved away from the small model's (they are trained, not frozen).
    small = read_file(small_model, "model")
    assert not torch.equal(a["generator"]["main.0.weight"], small["generator"]["main.0.weight"].float())
    export(straight, tmp_path / "grown.pt")
    m = load_model(tmp_path / "grown.pt")
    assert m.config == cfg
    assert m.generator(torch.zeros(1, cfg.nz)).shape == (1, 3, 64, 64)


def test_grow_from_a_model_of_another_shape_is_refused(
    small_model: Path, tiny_faces: Path, tmp_path: Path
) -> None:
    opts = TrainOptions(
        data=str(tiny_faces), out=str(tmp_path / "x"), epochs=1, batch_size=8, device="cpu",
        checkpoint_minutes=0, progress=False, grow_from=str(small_model),
    )  # fmt: skip
    with pytest.raises(ValueError, match="grows into"):
        train(ModelConfig(image_size=64, ngf=16, ndf=8), opts)


def test_cli_grows_from_a_shipped_name_or_a_file(small_model: Path, tiny_faces: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from completion.bundle import SHIPPED
    from completion.cli import main

    r = CliRunner().invoke(
        main,
        ["train", "--data", str(tiny_faces), "--out", str(tmp_path / "run"), "--grow-from", str(small_model),
         "--epochs", "1", "--batch-size", "8", "--fade-images", "16", "--no-progress", "--device", "cpu"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    ckpt = read_file(tmp_path / "run" / "checkpoint.pt", "checkpoint")
    assert ckpt["config"]["image_size"] == 64 and ckpt["grow"] is not None
    r = CliRunner().invoke(main, ["train", "--data", str(tiny_faces), "--out", str(tmp_path / "r2"),
                                  "--grow-from", "no-such-model.pt", "--epochs", "1"])  # fmt: skip
    assert r.exit_code == 1 and "no-such-model.pt" in r.stderr
    assert "celeba64" in SHIPPED
