"""The framer: a small CNN that moves a face's crop onto the training data's own framing.

YuNet's five landmarks place the model's crop (faces.framing_from_landmarks) within about 1.7 % of
its side in position and 2 degrees in angle, but only within about 5 % in size: CelebA aligned its
faces from its own annotations, and no distance between YuNet's landmarks (eyes, eyes to mouth,
box, or a least-squares fit of all of them) predicts its crop's side better than 4.7 %. The
generator learned exactly that framing, so the framer learns it too: it looks at the face through
the current crop (from the landmarks, or from a --box) and predicts the correction (shift, log
scale, rotation) onto the canonical crop. It was trained on the training faces only, by
benchmarks/fit_framer.py, from crops perturbed at random around the true one; `refine` applies it
twice.

The shipped weights (completion/weights/framer.pt, 3 MB) are loaded with weights_only=True."""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .bundle import MALFORMED, check_layout, load_weights, write_file
from .errors import ModelFileError
from .grid import to_signed
from .photo import Framing, crop_to_model

DEFAULT_FILE = Path(__file__).resolve().parent / "weights" / "framer.pt"
FORMAT = "dcgan-completion-framer/1"


@dataclass(frozen=True)
class FramerConfig:
    """The network and what its outputs mean.

    view: the input's side in pixels. margin: the input shows the centred margin x margin part of
    the crop (below 1, so that on the 89x109 aligned training images a perturbed view never reaches
    the image's edge, which would tell the network where the true crop is). shift, scale, angle:
    the units of the four outputs (the true crop's centre offset as a fraction of the current side,
    along the crop's own axes; the log of its side ratio; its rotation in degrees)."""

    view: int = 48
    margin: float = 0.85
    width: int = 32
    shift: float = 0.03
    scale: float = 0.08
    angle: float = 4.0


class Framer(nn.Module):
    """Four stride-2 stages of two 3x3 convolutions, global average pooling, a linear head."""

    def __init__(self, config: FramerConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        chans = [3, w, 2 * w, 4 * w, 6 * w]
        layers: list[nn.Module] = []
        for cin, cout in zip(chans, chans[1:], strict=False):
            layers += [
                nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, 2, 1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(chans[-1], 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def view_of(framing: Framing, config: FramerConfig) -> Framing:
    """The framing of the network's input for a crop: its centred `margin` part at `view` px."""
    m = config.margin
    return Framing(framing.cx, framing.cy, framing.width * m, framing.height * m, framing.angle, config.view)


def to_input(views: list[np.ndarray]) -> torch.Tensor:
    """uint8 HxWx3 views -> the network's (N, 3, H, W) input in [-1, 1]."""
    x = torch.from_numpy(np.stack(views)).permute(0, 3, 1, 2).float()
    return to_signed(x)


def correct(framing: Framing, out: np.ndarray, config: FramerConfig) -> Framing:
    """Apply one output row (see FramerConfig) to a square crop."""
    dx, dy = out[0] * config.shift * framing.width, out[1] * config.shift * framing.width
    t = math.radians(framing.angle)
    cx = framing.cx + dx * math.cos(t) - dy * math.sin(t)
    cy = framing.cy + dx * math.sin(t) + dy * math.cos(t)
    k = math.exp(float(out[2]) * config.scale)
    angle = framing.angle + float(out[3]) * config.angle
    return Framing(float(cx), float(cy), framing.width * k, framing.height * k, float(angle), framing.size)


def target(framing: Framing, truth: Framing, config: FramerConfig) -> np.ndarray:
    """The output row that moves `framing` onto `truth` (the inverse of `correct`)."""
    t = math.radians(framing.angle)
    ox, oy = truth.cx - framing.cx, truth.cy - framing.cy
    dx = (ox * math.cos(t) + oy * math.sin(t)) / framing.width
    dy = (-ox * math.sin(t) + oy * math.cos(t)) / framing.width
    du = math.log(truth.width / framing.width)
    da = truth.angle - framing.angle
    return np.array([dx / config.shift, dy / config.shift, du / config.scale, da / config.angle], np.float32)


def save_framer(net: Framer, path: Path, meta: dict) -> None:
    """Write the framer's weights and config (atomically, as model bundles are written)."""
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    write_file(path, {"format": FORMAT, "config": asdict(net.config), "state_dict": state, "meta": meta})


def load_framer(path: Path = DEFAULT_FILE) -> Framer:
    """A Framer in eval mode from a file written by save_framer."""
    blob = load_weights(path, "framer file")
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a framer file (expected format {FORMAT})")
    check_layout(blob, path, "framer file", ("config",), ("state_dict",))
    try:
        net = Framer(FramerConfig(**blob["config"]))
        net.load_state_dict(blob["state_dict"])
    except MALFORMED as e:  # as for model files: unknown config fields, weights of other shapes
        raise ModelFileError(f"{path}: the framer's weights do not match its config ({e})") from None
    return net.eval().requires_grad_(False)


@functools.cache
def default_framer() -> Framer:
    """The shipped framer, loaded once per process."""
    return load_framer(DEFAULT_FILE)


def refine(
    rgb: np.ndarray, framings: list[Framing], net: Framer | None = None, steps: int = 2
) -> list[Framing]:
    """Move square face crops in an HxWx3 uint8 image onto the training framing (`steps` passes;
    the second takes off most of what the first left, a third changes nothing measurable)."""
    if not framings:
        return []
    net = net if net is not None else default_framer()
    cfg = net.config
    out = list(framings)
    for _ in range(steps):
        views = [crop_to_model(rgb, view_of(f, cfg)) for f in out]
        with torch.no_grad():
            pred = net(to_input(views)).numpy().astype(np.float64)
        out = [correct(f, p, cfg) for f, p in zip(out, pred, strict=True)]
    return out
