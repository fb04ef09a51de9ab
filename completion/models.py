"""DCGAN generator and discriminator (Radford et al. 2015), sized from a ModelConfig."""

from __future__ import annotations

import copy

import torch
from torch import nn

from .config import ModelConfig


def init_weights(m: nn.Module) -> None:
    """DCGAN initialisation: conv weights N(0, 0.02), batch-norm scale N(1, 0.02), bias 0."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class Generator(nn.Module):
    """z (N, nz) in [-1, 1] -> image (N, nc, S, S) in [-1, 1]."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.nz = cfg.nz
        mult = 2 ** (cfg.n_blocks - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(cfg.nz, cfg.ngf * mult, 4, 1, 0, bias=False),
            nn.BatchNorm2d(cfg.ngf * mult),
            nn.ReLU(True),
        ]
        for _ in range(cfg.n_blocks - 1):
            layers += [
                nn.ConvTranspose2d(cfg.ngf * mult, cfg.ngf * mult // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(cfg.ngf * mult // 2),
                nn.ReLU(True),
            ]
            mult //= 2
        layers += [nn.ConvTranspose2d(cfg.ngf, cfg.nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.view(z.shape[0], self.nz, 1, 1))


def _down_stack(cfg: ModelConfig, in_ch: int, width: int) -> tuple[nn.Sequential, int]:
    """Stride-2 conv stages from S down to 4x4 (no batch norm on the first, as in DCGAN)."""
    layers: list[nn.Module] = [nn.Conv2d(in_ch, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
    ch = width
    for _ in range(cfg.n_blocks - 1):
        layers += [
            nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ch * 2),
            nn.LeakyReLU(0.2, True),
        ]
        ch *= 2
    return nn.Sequential(*layers), ch


class Discriminator(nn.Module):
    """image (N, nc, S, S) -> real/fake logit (N,). No sigmoid: losses use logits for stability."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.features, ch = _down_stack(cfg, cfg.nc, cfg.ndf)
        self.head = nn.Conv2d(ch, 1, 4, 1, 0, bias=False)
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).flatten()


class Encoder(nn.Module):
    """Masked image and its mask (N, nc + 1, S, S) -> z estimate (N, nz) in [-1, 1]."""

    def __init__(self, cfg: ModelConfig, width: int | None = None) -> None:
        super().__init__()
        self.features, ch = _down_stack(cfg, cfg.nc + 1, width or cfg.ndf)
        self.head = nn.Conv2d(ch, cfg.nz, 4, 1, 0)
        self.apply(init_weights)

    def forward(self, masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = torch.cat([masked * mask, mask * 2 - 1], dim=1)
        return torch.tanh(self.head(self.features(x)).flatten(1))


def fold_batch_norm(net: nn.Module) -> nn.Module:
    """A copy of an eval-mode network with each batch norm folded into the convolution before it.

    In eval mode a batch norm is a per-channel affine map, so the folded network computes the same
    function with one pass less over every activation, forward and backward."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    net = copy.deepcopy(net).eval()
    for seq in [m for m in net.modules() if isinstance(m, nn.Sequential)]:
        for i in range(1, len(seq)):
            conv, bn = seq[i - 1], seq[i]
            if isinstance(bn, nn.BatchNorm2d) and isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)):
                seq[i - 1] = fuse_conv_bn_eval(conv, bn, transpose=isinstance(conv, nn.ConvTranspose2d))
                seq[i] = nn.Identity()
    return net.requires_grad_(False)


class LatentProjection(nn.Module):
    """G's first layer, a transposed convolution of the 1x1 latent to a KxK map, as one matrix
    multiply: the same function, without the convolution's set-up, which took 21 % of a one-face
    search step for 0.4 % of its arithmetic (benchmarks/step_cost.py). The output has the NCHW
    shape in channels-last memory, as the layers after it run."""

    def __init__(self, conv: nn.ConvTranspose2d) -> None:
        super().__init__()
        w = conv.weight.detach()  # (nz, C, K, K)
        nz, c, kh, kw = w.shape
        self.shape = (kh, kw, c)
        # Columns in (row, column, channel) order, so the result is already channels-last.
        self.weight = nn.Parameter(w.permute(0, 2, 3, 1).reshape(nz, kh * kw * c).contiguous())
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros(c, dtype=w.dtype)
        self.bias = nn.Parameter(bias.repeat(kh * kw))
        self.out_dtype: torch.dtype | None = None  # the result cast to this (in_precision)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.image(self.project(z.reshape(z.shape[0], -1)))

    def project(self, z: torch.Tensor) -> torch.Tensor:
        """(N, K*K*C): z (N, nz) times the weights, in the weights' dtype."""
        return torch.addmm(self.bias, z.to(self.weight.dtype), self.weight)

    def image(self, h: torch.Tensor) -> torch.Tensor:
        """A projection as the next layer's input: NCHW shape, channels-last memory, out_dtype."""
        x = h if self.out_dtype is None else h.to(self.out_dtype)
        return x.view(h.shape[0], *self.shape).permute(0, 3, 1, 2)


def in_precision(net: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A copy of a search generator (plain or packed) with its weights in `dtype`, but for the
    latent projection's, which stay fp32, its result cast to `dtype`. One face's projection is one
    row times a 100 x K*K*C matrix, bound by memory: PyTorch's fp32 kernel for it takes under half
    the time of oneDNN's bf16 one (a one-face bf16 step 2.69 -> 2.30 ms, benchmarks/step_cost.py
    packed_all_bf16 against packed_bf16), and its sums are the more exact."""
    out = copy.deepcopy(net).to(dtype)
    for name, m in net.named_modules():
        if isinstance(m, LatentProjection):
            kept = copy.deepcopy(m).float()
            kept.out_dtype = None if dtype == torch.float32 else dtype
            out.set_submodule(name, kept)
    return out


def search_generator(G: nn.Module) -> nn.Module:
    """The generator as the latent search runs it: batch norm folded (fold_batch_norm), channels-
    last activations, and the first layer as a matrix multiply (LatentProjection); the same
    function, 1.1-1.3x faster per step for batches and more for one face. Frozen, eval mode."""
    net = fold_batch_norm(G).to(memory_format=torch.channels_last)
    first = net.main[0] if isinstance(getattr(net, "main", None), nn.Sequential) else None
    if isinstance(first, nn.ConvTranspose2d) and first.stride == (1, 1) and first.padding == (0, 0):
        net.main[0] = LatentProjection(first)
    return net.requires_grad_(False)
