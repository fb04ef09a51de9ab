"""Image quality measures for completions: PSNR on the whole image and on the hole, and SSIM."""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity


def psnr(a: np.ndarray, b: np.ndarray, region: np.ndarray | None = None) -> float:
    """PSNR in dB between uint8 images, over all pixels or only where region (HxW bool) is True."""
    diff = a.astype(np.float64) - b.astype(np.float64)
    if region is not None:
        diff = diff[region]
    mse = float(np.mean(diff**2)) if diff.size else 0.0
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004, 7x7 window) over the colour image."""
    return float(structural_similarity(a, b, channel_axis=2, data_range=255))
