"""Training the encoder E: (masked image, mask) -> z, so completion starts near the answer.

Each step mixes two sources, each with masks drawn from every mask type:
- G's own samples x = G(z): loss on z (E should invert G) and on G(E(.)) against x;
- real training faces x: loss on G(E(.)) against x over the whole image (the hole included: the
  training faces are complete, so the encoder learns to guess what the hole held).
G and D stay frozen; only E learns."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .bundle import Model, save_model
from .data import FaceData, select_files
from .device import resolve_precision
from .grid import to_signed
from .masks import make_mask
from .models import Encoder
from .options import EncoderOptions

log = logging.getLogger(__name__)

TRAIN_MASK_TYPES = (
    "center",
    "left",
    "right",
    "top",
    "bottom",
    "random:0.5",
    "random:0.8",
    "random:0.9",
    "pattern",
    "grid:2",
    "grid:4",
    "lowres:2",
    "lowres:4",
    "eyes",
    "mouth",
    "full",
)


def mask_bank(size: int, per_type: int, seed: int) -> torch.Tensor:
    """(T*per_type, 1, S, S) float masks (1 = known) of every training mask type."""
    masks = [
        make_mask(t, size, size, seed=seed * 100_003 + i) for t in TRAIN_MASK_TYPES for i in range(per_type)
    ]
    return torch.from_numpy(np.stack(masks).astype(np.float32))[:, None]


def train_encoder(model: Model, opts: EncoderOptions) -> Encoder:
    """Train a fresh encoder for model's G; returns it (eval mode)."""
    cfg = model.config
    device = model.device
    torch.manual_seed(opts.seed)
    enc = Encoder(cfg).to(device)
    opt = torch.optim.Adam(enc.parameters(), lr=opts.lr, betas=(0.5, 0.999))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, opts.steps)
    G = model.generator.eval()
    files = select_files(Path(opts.data), opts.offset, opts.limit)
    data = FaceData(files, cfg.image_size, cfg.crop)
    bank = mask_bank(cfg.image_size, 64, opts.seed).to(device)
    gen = torch.Generator().manual_seed(opts.seed)
    half = opts.batch_size // 2
    precision = resolve_precision(opts.precision, device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    bar = tqdm(range(opts.steps), desc="encoder", disable=not opts.progress, dynamic_ncols=True)
    t0 = time.monotonic()
    for step in bar:
        z = torch.rand(half, cfg.nz, generator=gen).to(device) * 2 - 1
        with torch.no_grad(), autocast:
            fake = G(z).float()
        idx = torch.randint(0, len(data.cache), (opts.batch_size - half,), generator=gen)
        real = to_signed(data.cache[idx].to(device).float())
        flip = (torch.rand(len(idx), generator=gen) < 0.5).to(device)
        real = torch.where(flip[:, None, None, None], real.flip(3), real)
        x = torch.cat([fake, real])
        m = bank[torch.randint(0, len(bank), (len(x),), generator=gen).to(device)]
        with autocast:
            z_hat = enc(x * m, m).float()
            recon = G(z_hat).float()
        loss_img = (recon - x).abs().mean()
        loss_z = (z_hat[:half] - z).pow(2).mean()
        loss = loss_img + opts.z_weight * loss_z
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 10 == 0:
            bar.set_postfix(img=f"{loss_img.item():.3f}", z=f"{loss_z.item():.3f}")
    log.info("encoder trained: %d steps in %.0f s (%s)", opts.steps, time.monotonic() - t0, precision)
    return enc.eval()


def add_encoder(model: Model, enc: Encoder, out: Path, opts: EncoderOptions) -> None:
    meta = dict(model.meta)
    meta["encoder"] = {
        "steps": opts.steps,
        "batch_size": opts.batch_size,
        "data": opts.data,
        "offset": opts.offset,
        "limit": opts.limit,
    }
    save_model(out, model.config, model.generator, model.discriminator, enc, meta)
