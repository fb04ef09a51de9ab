"""Encoder training: it learns to invert G, in fp32 and (where the CPU has it) bf16 autocast."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import completion.device as device_mod
import completion.train as train_mod
from completion.bundle import Model
from completion.config import ModelConfig
from completion.encoder import EncoderOptions, train_encoder
from completion.models import Discriminator, Encoder, Generator


def _inversion_error(model: Model, enc: Encoder) -> float:
    """Mean squared z error of E on G's own samples with no hole."""
    z = torch.rand(64, model.config.nz, generator=torch.Generator().manual_seed(9)) * 2 - 1
    with torch.no_grad():
        x = model.generator(z)
        return float((enc(x, torch.ones_like(x[:, :1])) - z).pow(2).mean())


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_encoder_learns_to_invert_g(tiny_faces: Path, precision: str) -> None:
    if precision == "bf16" and not device_mod.cpu_has_native_bf16():
        pytest.skip("this CPU has no native bf16 (training refuses bf16 here)")
    torch.manual_seed(0)
    cfg = ModelConfig(image_size=32, nz=8, ngf=8, ndf=8)  # a z small enough to invert in a few steps
    G = Generator(cfg)
    with torch.no_grad():  # an output layer that makes z visible (initialised G is nearly constant)
        G.main[-2].weight.mul_(30)
    G = train_mod.recompute_batch_norm(G, cfg.nz)
    model = Model(cfg, G, Discriminator(cfg).eval())
    before = _inversion_error(model, Encoder(cfg).eval())
    opts = EncoderOptions(data=str(tiny_faces), steps=150, batch_size=16, progress=False, precision=precision)
    enc = train_encoder(model, opts)
    assert _inversion_error(model, enc) < 0.6 * before


def test_encoder_refuses_bf16_without_native_units(
    tiny_faces: Path, tiny_cfg: ModelConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(device_mod, "cpu_has_native_bf16", lambda: False)
    model = Model(tiny_cfg, Generator(tiny_cfg).eval(), Discriminator(tiny_cfg).eval())
    opts = EncoderOptions(data=str(tiny_faces), steps=1, batch_size=4, progress=False, precision="bf16")
    with pytest.raises(ValueError, match="no native bfloat16"):
        train_encoder(model, opts)
