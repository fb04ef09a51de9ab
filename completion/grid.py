"""Image grids for sample sheets and comparison figures."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from .imageio import save_image


def to_signed(x: torch.Tensor) -> torch.Tensor:
    """Pixel values in [0, 255] -> the networks' [-1, 1] (one rule for every input)."""
    return x / 127.5 - 1


def to_pixels(x: torch.Tensor) -> torch.Tensor:
    """The networks' [-1, 1] -> float pixel values in [0, 255] on the CPU (clamped first)."""
    return (x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(N,C,H,W) or (C,H,W) in [-1, 1] -> (N,H,W,C) or (H,W,C) uint8."""
    x = to_pixels(x).round().to(torch.uint8)
    return x.movedim(-3, -1).numpy()


def make_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2, pad_value: float = 1.0) -> torch.Tensor:
    """(N,C,H,W) -> (C, rows*(H+p)+p, cols*(W+p)+p), the layout of torchvision.utils.make_grid.

    Written here so that `completion` never imports torchvision: it pulls in torch._dynamo and
    costs about 1.5 s of every command's start-up."""
    n, c, h, w = images.shape
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    grid = images.new_full((c, rows * (h + padding) + padding, cols * (w + padding) + padding), pad_value)
    for k in range(n):
        y, x = divmod(k, cols)
        top, left = y * (h + padding) + padding, x * (w + padding) + padding
        grid[:, top : top + h, left : left + w] = images[k]
    return grid


def save_grid(path: Path, images: torch.Tensor, nrow: int | None = None) -> None:
    """Save (N,3,H,W) images in [-1, 1] as one PNG grid."""
    n = images.shape[0]
    nrow = nrow or max(1, int(round(n**0.5)))
    grid = make_grid(images.detach().float().cpu(), nrow=nrow, padding=2, pad_value=1.0)
    save_image(Path(path), to_uint8(grid))
