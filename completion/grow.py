"""Growing a trained DCGAN to twice its image size (Karras et al. 2018, "Progressive Growing").

A model of size S and width w has the same layers at 4 ... S/2 px as a model of size 2S and width
w/2 (the width doubles at every halving of the resolution). So the larger model starts from the
smaller one's layers, and only its top block is new: in G a w/2-channel stage at S px and the
layer to RGB at 2S, in D the layer from RGB at 2S and a w-channel stage at S.

While the new block is faded in, G's output is (1 - a) x the small model's own picture, enlarged,
plus a x the new block's; D reads (1 - a) x the small model's first layer on the picture halved
plus a x its new block. a rises linearly from 0 to 1 over `fade_images` training images, so the
first steps see exactly the small model's pictures (enlarged bilinearly).

Before the fade, the new blocks are fitted for DISTIL_STEPS steps to what they replace (`distil`):
G's top block to the small model's picture enlarged, D's first block to the small model's first
layer on the halved picture. Randomly initialised, G's new block paints grey checkerboards for
thousands of steps (seen on celeba_hd: at a = 0.23 the plain 128-px G was still grey), and the
fade would hand over to a block that cannot yet paint; fitted, it starts as a sharp copy of the
small model and the GAN only has to add detail. The bridges (the small model's last G layer
and first D layer) are frozen buffers: the optimisers and checkpoints hold only the new networks,
which after the fade are plain `Generator` / `Discriminator` of the larger config."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .models import Discriminator, Generator

# Layers of Generator.main per block (conv, batch norm, ReLU); the last block is (conv, tanh).
_BLOCK = 3


def grown_config(small: ModelConfig) -> ModelConfig:
    """The 2S config whose lower layers are exactly the small model's."""
    if small.ngf % 2 or small.ndf % 2:
        raise ValueError(f"widths must be even to grow (ngf {small.ngf}, ndf {small.ndf})")
    return ModelConfig(
        image_size=small.image_size * 2,
        nz=small.nz,
        ngf=small.ngf // 2,
        ndf=small.ndf // 2,
        nc=small.nc,
        crop=small.crop,
    )


def bridges(small_g: Generator, small_d: Discriminator) -> dict[str, torch.Tensor]:
    """The small model's layer to RGB (G) and from RGB (D): the fade's other path."""
    return {
        "g_rgb": small_g.main[-2].weight.detach().clone(),
        "d_rgb": small_d.features[0].weight.detach().clone(),
    }


def seed_from_small(G: Generator, D: Discriminator, small_g: Generator, small_d: Discriminator) -> None:
    """Copy every layer the grown networks share with the small ones (in place)."""
    n = len(small_g.main) - 2  # all of small G but its layer to RGB and tanh
    G.main[:n].load_state_dict(small_g.main[:n].state_dict())
    # Small D: [conv, lrelu] then blocks; grown D: [conv, lrelu], one new block, then the same.
    for new, old in zip(D.features[2 + _BLOCK :], small_d.features[2:], strict=True):
        new.load_state_dict(old.state_dict())  # by position: a slice keeps its layers' indices
    D.head.load_state_dict(small_d.head.state_dict())


class FadeG(nn.Module):
    """G of the grown config while its top block fades in (see the module docstring)."""

    def __init__(self, G: Generator, g_rgb: torch.Tensor) -> None:
        super().__init__()
        self.G = G
        self.register_buffer("g_rgb", g_rgb)
        self.alpha = 1.0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.alpha >= 1.0:
            return self.G(z)
        h, old = _old_picture(self.G, self.g_rgb, z)
        return torch.lerp(old, self.G.main[-(_BLOCK + 2) :](h), self.alpha)


class FadeD(nn.Module):
    """D of the grown config while its first block fades in."""

    def __init__(self, D: Discriminator, d_rgb: torch.Tensor) -> None:
        super().__init__()
        self.D = D
        self.register_buffer("d_rgb", d_rgb)
        self.alpha = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.D.features
        h = f[: 2 + _BLOCK](x)
        if self.alpha < 1.0:
            h = torch.lerp(_old_features(x, self.d_rgb), h, self.alpha)
        return self.D.head(f[2 + _BLOCK :](h)).flatten()


def _enlarge(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def _old_picture(G: Generator, g_rgb: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(features at S/2 under the new block, the small model's picture from them, enlarged)."""
    h = G.main[: -(_BLOCK + 2)](z.view(z.shape[0], G.nz, 1, 1))
    return h, _enlarge(torch.tanh(F.conv_transpose2d(h, g_rgb.to(h.dtype), stride=2, padding=1)))


def _old_features(x: torch.Tensor, d_rgb: torch.Tensor) -> torch.Tensor:
    """The small D's first layer on the picture halved: the features D's new block replaces."""
    return F.leaky_relu(F.conv2d(F.avg_pool2d(x, 2), d_rgb.to(x.dtype), stride=2, padding=1), 0.2)


DISTIL_STEPS = 400


def distil(
    G: Generator,
    D: Discriminator,
    g_rgb: torch.Tensor,
    d_rgb: torch.Tensor,
    real: Callable[[torch.Generator], torch.Tensor],
    steps: int = DISTIL_STEPS,
    batch_size: int = 64,
    seed: int = 0,
) -> dict[str, float]:
    """Fit the new blocks to the layers they replace (in place; see the module docstring). real(gen)
    gives a batch of real images in [-1, 1]. Returns the final L1 errors (G: of the picture, D: of
    the features), each as a share of the error the block had before fitting."""
    gen = torch.Generator().manual_seed(seed)
    device = g_rgb.device
    top_g, top_d = G.main[-(_BLOCK + 2) :], D.features[: 2 + _BLOCK]
    opt_g = torch.optim.Adam(top_g.parameters(), lr=1e-3, betas=(0.9, 0.999))
    opt_d = torch.optim.Adam(top_d.parameters(), lr=1e-3, betas=(0.9, 0.999))
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    G.train()
    D.train()
    for _ in range(steps):
        z = (torch.rand(batch_size, G.nz, generator=gen) * 2 - 1).to(device)
        with torch.no_grad():
            h, target = _old_picture(G, g_rgb, z)
        loss_g = (top_g(h) - target).abs().mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        x = real(gen)
        with torch.no_grad():
            feat = _old_features(x, d_rgb)
        loss_d = (top_d(x) - feat).abs().mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        last = {"g": loss_g.item(), "d": loss_d.item()}
        first = first or dict(last)
    return {k: last[k] / max(first[k], 1e-12) for k in last}


def fade_alpha(images_seen: int, fade_images: int) -> float:
    return 1.0 if fade_images <= 0 else min(1.0, images_seen / fade_images)
