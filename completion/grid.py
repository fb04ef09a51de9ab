"""Image grids for sample sheets and comparison figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision.utils import make_grid

from .imageio import save_image


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(N,C,H,W) or (C,H,W) in [-1, 1] -> (N,H,W,C) or (H,W,C) uint8."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.movedim(-3, -1).numpy()


def save_grid(path: Path, images: torch.Tensor, nrow: int | None = None) -> None:
    """Save (N,3,H,W) images in [-1, 1] as one PNG grid."""
    n = images.shape[0]
    nrow = nrow or max(1, int(round(n**0.5)))
    grid = make_grid(images.detach().float().cpu(), nrow=nrow, padding=2, pad_value=1.0)
    save_image(Path(path), to_uint8(grid))
