"""The search's G with oneDNN weights packed once (packed.py) computes what the unpacked one
computes, value and gradient on z, bit for bit, at every batch size it meets."""

from __future__ import annotations

import copy

import pytest
import torch

from completion import packed
from completion.config import ModelConfig
from completion.device import cpu_has_native_bf16
from completion.models import Generator, in_precision, search_generator

pytestmark = pytest.mark.skipif(not packed.available(torch.device("cpu")), reason="no oneDNN in this torch")

DTYPES = [torch.float32] + ([torch.bfloat16] if cpu_has_native_bf16() else [])


def _value_and_grad(g: torch.nn.Module, z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
    z = z.clone().requires_grad_(True)
    out = g(z.to(next(g.parameters()).dtype)).float()
    (y * out).abs().sum().backward()  # a loss whose gradient reaches every output pixel unevenly
    return out.detach(), z.grad


def _zy(size: int, n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(2)
    return torch.rand(n, 100, generator=gen) * 2 - 1, torch.randn(n, 3, size, size, generator=gen)


@pytest.mark.parametrize("size", [32, 64, 128])
@pytest.mark.parametrize("dtype", DTYPES)
def test_packed_generator_is_the_same_function_and_gradient(size: int, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    G = Generator(ModelConfig(image_size=size, ngf=8, ndf=8)).eval()
    plain = in_precision(search_generator(G), dtype)
    fast = packed.pack_generator(plain)
    assert isinstance(fast, packed.PackedGenerator)
    # The search's way under bf16: the packed fp32 generator cast (its latent projection kept fp32).
    assert torch.equal(
        _value_and_grad(in_precision(packed.pack_generator(search_generator(G)), dtype), *_zy(size))[1],
        _value_and_grad(fast, *_zy(size))[1],
    )
    gen = torch.Generator().manual_seed(1)
    # More batch sizes than the cache keeps, and one again after it was evicted.
    for n in (1, 3, 2, 5, 4, 6, 1):
        z = torch.rand(n, 100, generator=gen) * 2 - 1
        y = torch.randn(n, 3, size, size, generator=gen)
        out, grad = _value_and_grad(plain, z, y)
        out_p, grad_p = _value_and_grad(fast, z, y)
        assert torch.equal(out_p, out) and torch.equal(grad_p, grad), n
    # A copy of a used one works and gives the same (its packs are remade, not copied).
    again = copy.deepcopy(fast)
    assert torch.equal(_value_and_grad(again, z, y)[1], grad)


def test_other_networks_are_left_as_they_are() -> None:
    torch.manual_seed(0)
    G = search_generator(Generator(ModelConfig(image_size=32, ngf=8, ndf=8)).eval())
    for net in (torch.nn.Linear(4, 4), torch.nn.Sequential(torch.nn.ReLU())):
        assert packed.pack_generator(net) is net
    G.main = G.main[:-1]  # no tanh at the end: not the DCGAN shape
    assert packed.pack_generator(G) is G
