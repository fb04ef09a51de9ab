"""One config object describes a model: its networks and input framing (images are mapped from
[0, 255] to [-1, 1]: grid.to_signed)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

VALID_SIZES = (32, 64, 128)
# Every seed reaches numpy's default_rng and torch's manual_seed (which refuses negatives and values
# above 2**64 - 1 with a traceback); 32 bits leave room for the seeds derived from it.
SEED_MAX = 2**32 - 1


@dataclass(frozen=True)
class ModelConfig:
    image_size: int = 64
    nz: int = 100  # latent dims, z ~ U[-1, 1]^nz
    ngf: int = 64  # generator width
    ndf: int = 64  # discriminator width
    nc: int = 3  # image channels
    crop: str = "center:0.72"  # canonical framing applied to training images

    def __post_init__(self) -> None:
        if self.image_size not in VALID_SIZES:
            raise ValueError(f"image_size must be one of {VALID_SIZES}, got {self.image_size}")
        for name in ("nz", "ngf", "ndf", "nc"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")
        parse_crop(self.crop)

    @property
    def n_blocks(self) -> int:
        """Number of stride-2 stages between 4x4 and the image size."""
        return int(math.log2(self.image_size)) - 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def parse_crop(spec: str) -> float | None:
    """'center:0.72' -> 0.72 (side of the centred square as a share of the width); 'none' -> None."""
    if spec == "none":
        return None
    kind, _, value = spec.partition(":")
    try:
        frac = float(value)
    except ValueError:
        frac = -1.0
    if kind != "center" or not 0 < frac <= 1:
        raise ValueError(f"crop must be 'none' or 'center:F' with 0 < F <= 1, got {spec!r}")
    return frac
