"""Network shapes, output range, initialisation and config validation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from completion.config import ModelConfig
from completion.models import (
    Discriminator,
    Encoder,
    Generator,
    LatentProjection,
    fold_batch_norm,
    search_generator,
)


@pytest.mark.parametrize("size", [32, 64, 128])
def test_generator_and_discriminator_shapes(size: int) -> None:
    cfg = ModelConfig(image_size=size, ngf=8, ndf=8)
    torch.manual_seed(0)
    G, D = Generator(cfg), Discriminator(cfg)
    z = torch.rand(3, cfg.nz) * 2 - 1
    with torch.no_grad():
        x = G(z)
        logits = D(x)
    assert x.shape == (3, 3, size, size)
    assert x.min() >= -1 and x.max() <= 1
    assert logits.shape == (3,)
    assert torch.isfinite(logits).all()


def test_generator_accepts_4d_latent(tiny_cfg: ModelConfig) -> None:
    G = Generator(tiny_cfg)
    with torch.no_grad():
        assert G(torch.zeros(2, tiny_cfg.nz, 1, 1)).shape == (2, 3, 32, 32)


def test_init_weights_std() -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(image_size=64, ngf=16, ndf=16)
    for net in (Generator(cfg), Discriminator(cfg)):
        convs = [m.weight for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
        w = torch.cat([c.flatten() for c in convs])
        assert w.mean().abs() < 2e-3
        assert w.std().item() == pytest.approx(0.02, rel=0.05)
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                assert m.weight.mean().item() == pytest.approx(1.0, abs=0.02)
                assert torch.all(m.bias == 0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"image_size": 48},
        {"crop": "foo"},
        {"crop": "center:0"},
        {"crop": "center:1.5"},
        {"crop": "middle:0.5"},
        {"ngf": 0},
        {"nz": -1},
    ],
)
def test_invalid_config_raises(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        ModelConfig(**kwargs)


def test_config_round_trip_ignores_unknown_keys() -> None:
    cfg = ModelConfig(image_size=32, ngf=8, ndf=8, crop="none")
    assert ModelConfig.from_dict({**cfg.to_dict(), "future_field": 1}) == cfg
    assert cfg.n_blocks == 3


@pytest.mark.parametrize("size", [32, 64])
def test_encoder_shape_and_range(size: int) -> None:
    cfg = ModelConfig(image_size=size, ngf=8, ndf=8)
    enc = Encoder(cfg)
    masked = torch.rand(3, 3, size, size) * 2 - 1
    mask = (torch.rand(3, 1, size, size) > 0.5).float()
    with torch.no_grad():
        z = enc(masked, mask)
    assert z.shape == (3, cfg.nz)
    assert z.min() >= -1 and z.max() <= 1
    assert Encoder(cfg, width=4).features[0].out_channels == 4


def _randomise_batch_norm(net: nn.Module, gen: torch.Generator) -> None:
    """Non-trivial running statistics and affine parameters, as after training."""
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


def test_fold_batch_norm_same_function_and_gradient() -> None:
    cfg = ModelConfig(image_size=32, ngf=8, ndf=8)
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    G, D = Generator(cfg), Discriminator(cfg)
    for net in (G, D):
        _randomise_batch_norm(net, gen)
        net.eval()
    Gf, Df = fold_batch_norm(G), fold_batch_norm(D)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in [*Gf.modules(), *Df.modules()])
    assert any(isinstance(m, nn.BatchNorm2d) for m in G.modules())  # the original is untouched
    z = (torch.rand(4, cfg.nz, generator=gen) * 2 - 1).requires_grad_(True)
    zf = z.detach().clone().requires_grad_(True)
    out, outf = G(z), Gf(zf)
    torch.testing.assert_close(outf, out, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(Df(outf), D(out), atol=1e-4, rtol=1e-4)
    D(out).sum().backward()
    Df(outf).sum().backward()
    torch.testing.assert_close(zf.grad, z.grad, atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("size", [32, 64])
def test_search_generator_same_function_and_gradient(size: int) -> None:
    """The search's G (batch norm folded, first layer as a matrix multiply) computes G's function
    and its gradient w.r.t. z, in fp32 and under bf16 autocast."""
    cfg = ModelConfig(image_size=size, ngf=8, ndf=8)
    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    G = Generator(cfg)
    _randomise_batch_norm(G, gen)
    G.eval()
    Gs = search_generator(G)
    assert isinstance(Gs.main[0], LatentProjection)
    assert isinstance(G.main[0], nn.ConvTranspose2d)  # the original is untouched
    z = (torch.rand(3, cfg.nz, generator=gen) * 2 - 1).requires_grad_(True)
    zs = z.detach().clone().requires_grad_(True)
    out, outs = G(z), Gs(zs)
    torch.testing.assert_close(outs, out, atol=1e-5, rtol=1e-4)
    (out * out).sum().backward()
    (outs * outs).sum().backward()
    torch.testing.assert_close(zs.grad, z.grad, atol=1e-5, rtol=1e-3)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        torch.testing.assert_close(Gs(z).float(), G(z).float(), atol=0.05, rtol=0)
