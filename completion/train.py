"""DCGAN training: one loop for one CPU, one GPU, or N processes under torchrun (DDP).

Every random draw of a step (z, flips) comes from a generator seeded by (seed, epoch, rank, step),
and the epoch order from (seed, epoch), so a run resumed from any checkpoint continues exactly as
if it had never stopped, with no RNG state to carry."""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .bundle import (
    CHECKPOINT_VERSION,
    FORMAT,
    MALFORMED,
    check_layout,
    load_model,
    read_file,
    save_model,
    write_file,
)
from .config import ModelConfig
from .data import FaceData, select_files
from .device import resolve_device, resolve_precision
from .errors import ModelFileError, TrainingDiverged
from .grid import save_grid
from .grow import FadeD, FadeG, bridges, distil, fade_alpha, grown_config, seed_from_small
from .imageio import ensure_folder
from .models import Discriminator, Generator
from .options import TrainOptions

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainState:
    epoch: int = 0  # epoch in progress
    step: int = 0  # batches of that epoch already done
    images_seen: int = 0
    wall_seconds: float = 0.0
    history: dict[str, list[float]] = field(
        default_factory=lambda: {k: [] for k in ("images", "loss_d", "loss_g", "d_x", "d_gz")}
    )


EMA_MAX_DECAY = 0.999
BN_BATCHES = 32  # batches of z used to re-estimate an averaged G's batch-norm statistics


def ema_decay(step: int) -> float:
    """Warm-up decay min(0.999, (1+t)/(10+t)): early on the average follows G closely, so it does
    not keep the random initial weights for thousands of steps."""
    return min(EMA_MAX_DECAY, (1 + step) / (10 + step))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, parameters only (batch-norm statistics of an
    average of weights are not the average of statistics: recompute_batch_norm sets them)."""
    for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
        pe.lerp_(pm.detach(), 1.0 - decay)


@torch.no_grad()
def recompute_batch_norm(G: nn.Module, nz: int, seed: int = 0, batches: int = BN_BATCHES) -> nn.Module:
    """Re-estimate G's batch-norm running statistics for its own weights: a cumulative average
    over `batches` batches of 64 random z in train mode. Returns G in eval mode."""
    device = next(G.parameters()).device
    bns = [m for m in G.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    G.train()
    gen = torch.Generator().manual_seed(seed)
    for _ in range(batches):
        G((torch.rand(64, nz, generator=gen) * 2 - 1).to(device))
    for m, mom in zip(bns, saved, strict=True):
        m.momentum = mom
    return G.eval()


def step_generator(seed: int, epoch: int, rank: int, step: int) -> torch.Generator:
    mixed = ((seed * 1_000_003 + epoch) * 1009 + rank) * 1_000_003 + step
    # Modulo 2**64, torch's seed range: large seeds would overflow it; smaller ones are unchanged.
    return torch.Generator().manual_seed(mixed % 2**64)


def gan_losses(d_real: torch.Tensor, d_fake: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """Discriminator loss with logits: BCE(real, 1 - smoothing) + BCE(fake, 0), via softplus."""
    target = 1.0 - smoothing
    real = target * F.softplus(-d_real) + (1 - target) * F.softplus(d_real)
    return real.mean() + F.softplus(d_fake).mean()


def train_step(
    G: nn.Module,
    D: nn.Module,
    D_local: nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    real: torch.Tensor,
    z: torch.Tensor,
    smoothing: float = 0.0,
    precision: str = "fp32",
) -> dict[str, torch.Tensor]:
    """One D update then one non-saturating G update on a shared G(z).

    precision "bf16" runs the networks under bfloat16 autocast (weights, optimiser state and
    losses stay float32).

    D_local is D without the DDP wrapper: the G step needs gradients only w.r.t. the image, so it
    runs D with its parameters frozen, skipping their weight gradients (a third of D's backward)
    and any gradient all-reduce for them."""
    autocast = torch.autocast(z.device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    with autocast:
        fake = G(z)
    opt_d.zero_grad(set_to_none=True)
    with autocast:
        d_real = D(real).float()
        d_fake = D(fake.detach()).float()
    loss_d = gan_losses(d_real, d_fake, smoothing)
    loss_d.backward()
    opt_d.step()

    opt_g.zero_grad(set_to_none=True)
    D_local.requires_grad_(False)
    with autocast:
        d_gen = D_local(fake).float()
    loss_g = F.softplus(-d_gen).mean()
    loss_g.backward()
    D_local.requires_grad_(True)
    opt_g.step()
    return {
        "loss_d": loss_d.detach(),
        "loss_g": loss_g.detach(),
        "d_x": torch.sigmoid(d_real.detach()).mean(),
        "d_gz": torch.sigmoid(d_fake.detach()).mean(),
    }


def make_optimizers(
    G: nn.Module, D: nn.Module, lr: float, beta1: float
) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """Adam for G and D; the fused kernel updates all parameters in one pass (CPU and CUDA)."""
    return (
        torch.optim.Adam(G.parameters(), lr=lr, betas=(beta1, 0.999), fused=True),
        torch.optim.Adam(D.parameters(), lr=lr, betas=(beta1, 0.999), fused=True),
    )


def prepare_batch(
    batch: torch.Tensor, gen: torch.Generator, device: torch.device, channels_last: bool
) -> torch.Tensor:
    """uint8 (N,3,S,S) -> float in [-1, 1] on device, with random horizontal flips."""
    flip = torch.rand(batch.shape[0], generator=gen) < 0.5
    batch = torch.where(flip[:, None, None, None], batch.flip(3), batch)
    x = batch.to(device, non_blocking=True).float().div_(127.5).sub_(1.0)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _distributed() -> tuple[int, int, int]:
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    return 0, 1, 0


def checkpoint_path(out: Path) -> Path:
    return Path(out) / CHECKPOINT


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A training checkpoint (bundle.read_file), its sections checked for kind (check_layout)."""
    ckpt = read_file(path, "checkpoint")
    ema = ("generator_ema",) if ckpt.get("generator_ema") is not None else ()
    check_layout(
        ckpt, Path(path), "checkpoint", ("config", "options", "state", "opt_g", "opt_d"),
        ("generator", "discriminator", *ema),
    )  # fmt: skip
    for key in ("opt_g", "opt_d"):
        if not {"state", "param_groups"} <= ckpt[key].keys():
            raise ModelFileError(f"{path}: checkpoint has no valid {key!r} section")
    return ckpt


class _DeferredInterrupt:
    """Holds a first Ctrl-C (SIGINT) or SIGTERM until check() is called between training steps, so
    a step is never cut in half and a checkpoint is written; a second signal interrupts at once.
    SIGTERM matters for runs started in the background (nohup ... &), where SIGINT is ignored.
    Only in the main thread of a single process (under torchrun every rank must stop at the same
    step, which this cannot promise)."""

    def __init__(self, enabled: bool = True) -> None:
        self.pending = False
        self.previous: dict[int, object] = {}
        if not enabled or threading.current_thread() is not threading.main_thread():
            return
        for sig, default in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL)):
            if signal.getsignal(sig) is default:
                self.previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        if self.pending:
            raise KeyboardInterrupt
        self.pending = True
        log.warning("stopping after this step (Ctrl-C again to stop at once)")

    def check(self) -> None:
        if self.pending:
            raise KeyboardInterrupt

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}


@contextlib.contextmanager
def _malformed(path: Path) -> Iterator[None]:
    """A checkpoint that unpickles but lacks our layout is a ModelFileError naming it."""
    try:
        yield
    except MALFORMED as e:
        raise ModelFileError(f"{path}: checkpoint does not match its config ({e})".splitlines()[0]) from e


def merge_resume(
    cfg: ModelConfig, opts: TrainOptions, ckpt: dict[str, Any], ckpt_file: Path, given: Collection[str]
) -> tuple[ModelConfig, TrainOptions, TrainState]:
    """The config, options and state a resumed run continues with: the data, optimisation and
    network settings from the checkpoint, except the data folder when opts.data is set (the same
    images, moved) and how long and where to run; given options the checkpoint overrides are logged."""
    out = Path(opts.out)
    wanted_cfg = cfg  # what was asked for; the checkpoint's config wins
    with _malformed(ckpt_file):
        cfg = ModelConfig.from_dict(ckpt["config"])
        saved = TrainOptions(**ckpt["options"])
        state = TrainState(**ckpt["state"])
    # What the data and optimisation were stays fixed; how long and where to run may change.
    new = ("epochs", "device", "checkpoint_minutes", "progress", "precision", "keep_every")
    # How the run is kept and on what precision carry over unless given again.
    sticky = ("precision", "keep_every")
    wanted = opts
    opts = TrainOptions(
        **{
            **asdict(saved),
            **{k: getattr(opts, k) for k in new if k not in sticky or k in given},
            "out": str(out),
            "data": opts.data or saved.data,  # a moved data folder may be given anew
        }
    )
    differ = [
        f"--{k.replace('_', '-')} {getattr(wanted, k)} (checkpoint: {getattr(opts, k)})"
        for k in sorted(set(given) & set(asdict(opts)) - set(new) - {"data", "out"})
        if getattr(wanted, k) != getattr(opts, k)
    ] + [
        f"--{k.replace('_', '-')} {getattr(wanted_cfg, k)} (checkpoint: {getattr(cfg, k)})"
        for k in sorted(set(given) & {"image_size", "ngf", "ndf", "crop"})
        if getattr(wanted_cfg, k) != getattr(cfg, k)
    ]
    log.info(
        "resuming %s at epoch %d: data %s, model and optimisation from the checkpoint; %s",
        out, state.epoch, opts.data,
        "ignored, differing from it: " + ", ".join(differ) if differ else "no given option differs",
    )  # fmt: skip
    return cfg, opts, state


@dataclass
class _Nets:
    """What a run trains: G and D, their optimisers, G's average, and the modules the steps call
    (the fading wrappers of a grown model, under DDP their wrappers)."""

    G: Generator
    D: Discriminator
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    G_ema: nn.Module | None
    G_train: nn.Module
    D_train: nn.Module
    D_local: nn.Module
    grow_bridges: dict[str, torch.Tensor] | None


def build_networks(
    cfg: ModelConfig,
    opts: TrainOptions,
    ckpt: dict[str, Any] | None,
    ckpt_file: Path,
    device: torch.device,
    world: int,
) -> _Nets:
    """G, D and their optimisers, new (seeded, or grown from --grow-from) or from the checkpoint."""
    torch.manual_seed(opts.seed)  # identical initial weights on every rank
    G, D = Generator(cfg).to(device), Discriminator(cfg).to(device)
    if opts.channels_last:
        G.to(memory_format=torch.channels_last)
        D.to(memory_format=torch.channels_last)
    opt_g, opt_d = make_optimizers(G, D, opts.lr, opts.beta1)
    grow_bridges = None
    if ckpt is not None and ckpt.get("grow") is not None:
        grow_bridges = ckpt["grow"]
    elif ckpt is None and opts.grow_from:
        grow_bridges = start_grown(G, D, cfg, Path(opts.grow_from))
    if ckpt is not None:
        with _malformed(ckpt_file):
            G.load_state_dict(ckpt["generator"])
            D.load_state_dict(ckpt["discriminator"])
            opt_g.load_state_dict(ckpt["opt_g"])
            opt_d.load_state_dict(ckpt["opt_d"])
    G_ema = copy.deepcopy(G).requires_grad_(False) if opts.ema else None
    if G_ema is not None and ckpt is not None and ckpt.get("generator_ema") is not None:
        with _malformed(ckpt_file):
            G_ema.load_state_dict(ckpt["generator_ema"])
    G_train, D_train, D_local = G, D, D
    if grow_bridges is not None:
        g_rgb, d_rgb = (grow_bridges[k].to(device) for k in ("g_rgb", "d_rgb"))
        G_train, D_train = FadeG(G, g_rgb), FadeD(D, d_rgb)
        D_local = D_train
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        G_train = nn.parallel.DistributedDataParallel(G_train, device_ids=ids)
        D_train = nn.parallel.DistributedDataParallel(D_train, device_ids=ids)
    return _Nets(G, D, opt_g, opt_d, G_ema, G_train, D_train, D_local, grow_bridges)


class _Run:
    """One training run's loop: epochs of steps, the running history, timed and per-epoch
    checkpoints and sample grids. Rank 0 alone writes files."""

    def __init__(
        self,
        cfg: ModelConfig,
        opts: TrainOptions,
        nets: _Nets,
        data: FaceData,
        state: TrainState,
        device: torch.device,
        precision: str,
        rank: int,
        world: int,
    ) -> None:
        self.cfg, self.opts, self.nets, self.data, self.state = cfg, opts, nets, data, state
        self.device, self.precision, self.rank, self.world = device, precision, rank, world
        self.out = Path(opts.out)
        self.ckpt_file = checkpoint_path(self.out)
        self.per_epoch = len(data) // world // opts.batch_size
        self.fixed_z = torch.rand(64, cfg.nz, generator=torch.Generator().manual_seed(opts.seed)) * 2 - 1
        self.last_save = self.t_start = time.monotonic()
        self.base_wall = state.wall_seconds
        self.sums = {k: 0.0 for k in ("loss_d", "loss_g", "d_x", "d_gz")}
        self.n_sum = 0

    def save(self) -> None:
        if self.rank != 0:
            return
        n, st = self.nets, self.state
        write_file(
            self.ckpt_file,
            {
                "format": FORMAT,
                "kind": "checkpoint",
                "version": CHECKPOINT_VERSION,
                "config": self.cfg.to_dict(),
                "options": asdict(self.opts),
                "state": asdict(st),
                "generator": n.G.state_dict(),
                "discriminator": n.D.state_dict(),
                "generator_ema": None if n.G_ema is None else n.G_ema.state_dict(),
                "opt_g": n.opt_g.state_dict(),
                "opt_d": n.opt_d.state_dict(),
                "grow": n.grow_bridges,
                "meta": training_meta(self.opts, st, len(self.data), self.device, self.world),
            },
        )

    def clock(self) -> None:
        self.state.wall_seconds = self.base_wall + time.monotonic() - self.t_start

    def step(self, batch: torch.Tensor) -> tuple[dict[str, float], int]:
        """One step of D and G on a batch; the losses (which must be finite) and the images used."""
        opts, n, state = self.opts, self.nets, self.state
        gen = step_generator(opts.seed, state.epoch, self.rank, state.step)
        real = prepare_batch(batch, gen, self.device, opts.channels_last)
        z = (torch.rand(real.shape[0], self.cfg.nz, generator=gen) * 2 - 1).to(self.device)
        if n.grow_bridges is not None:
            alpha = fade_alpha(state.images_seen, opts.fade_images)
            for net in (n.G_train, n.D_train):
                getattr(net, "module", net).alpha = alpha  # under DDP: its module
        m = train_step(
            n.G_train, n.D_train, n.D_local, n.opt_g, n.opt_d, real, z, opts.label_smoothing, self.precision
        )
        if n.G_ema is not None:
            ema_update(n.G_ema, n.G, ema_decay(state.images_seen // (opts.batch_size * self.world)))
        vals = {k: float(v) for k, v in m.items()}
        if not all(math.isfinite(v) for v in vals.values()):
            raise TrainingDiverged(
                f"loss became non-finite at epoch {state.epoch + 1}, batch {state.step + 1} "
                f"({vals}); the last good checkpoint {self.ckpt_file} is kept"
            )
        state.step += 1
        state.images_seen += real.shape[0] * self.world
        self.record(vals)
        return vals, real.shape[0]

    def record(self, vals: dict[str, float]) -> None:
        """The history: means over every 50 steps and over the epoch's last steps."""
        state = self.state
        for k in self.sums:
            self.sums[k] += vals[k]
        self.n_sum += 1
        if self.n_sum == 50 or state.step == self.per_epoch:
            state.history["images"].append(float(state.images_seen))
            for k in self.sums:
                state.history[k].append(self.sums[k] / self.n_sum)
            self.sums = dict.fromkeys(self.sums, 0.0)
            self.n_sum = 0

    def epoch(self, stop: _DeferredInterrupt) -> None:
        opts, state, world = self.opts, self.state, self.world
        order = self.data.epoch_order(opts.seed, state.epoch, self.rank, world)
        bar = tqdm(
            total=self.per_epoch * opts.batch_size * world,
            initial=state.step * opts.batch_size * world,
            desc=f"epoch {state.epoch + 1}/{opts.epochs}",
            unit="img",
            disable=not opts.progress or self.rank != 0,
            dynamic_ncols=True,
        )
        for batch in self.data.batches(order, opts.batch_size, start=state.step):
            vals, n_images = self.step(batch)
            bar.update(n_images * world)
            bar.set_postfix(
                D=f"{vals['loss_d']:.3f}",
                G=f"{vals['loss_g']:.3f}",
                Dx=f"{vals['d_x']:.2f}",
                DGz=f"{vals['d_gz']:.2f}",
            )
            self.clock()
            if (
                opts.checkpoint_minutes > 0
                and time.monotonic() - self.last_save > opts.checkpoint_minutes * 60
            ):
                self.save()
                self.last_save = time.monotonic()
            stop.check()
        bar.close()
        state.epoch += 1
        state.step = 0
        self.clock()
        self.end_epoch()
        stop.check()

    def end_epoch(self) -> None:
        """The epoch's sample grid (from G's average, when kept), checkpoint and kept copy."""
        n, state = self.nets, self.state
        if self.rank == 0:
            shown = n.G if n.G_ema is None else recompute_batch_norm(copy.deepcopy(n.G_ema), self.cfg.nz)
            shown.eval()
            with torch.no_grad():
                grid = shown(self.fixed_z.to(self.device)).cpu()
            n.G.train()
            save_grid(self.out / f"samples_epoch_{state.epoch:03d}.png", grid)
        self.save()
        if self.rank == 0 and self.opts.keep_every and state.epoch % self.opts.keep_every == 0:
            shutil.copyfile(self.ckpt_file, self.out / f"checkpoint_epoch_{state.epoch:03d}.pt")
        self.last_save = time.monotonic()


def train(cfg: ModelConfig, opts: TrainOptions, resume: bool = False, given: Collection[str] = ()) -> Path:
    """Train (or resume) a DCGAN; returns the checkpoint path. Rank 0 alone writes files.

    On resume the data, optimisation and network settings come from the checkpoint, except the
    data folder when opts.data is set (the same images, moved); `given` names the options the user
    set, so that those the checkpoint overrides are reported (merge_resume)."""
    ckpt_file = checkpoint_path(Path(opts.out))
    state, ckpt = TrainState(), None
    if resume and ckpt_file.exists():
        ckpt = load_checkpoint(ckpt_file)
        cfg, opts, state = merge_resume(cfg, opts, ckpt, ckpt_file, given)
    rank, world, local_rank = _distributed()
    device = resolve_device(opts.device, local_rank)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    precision = resolve_precision(opts.precision, device)  # refused before anything is built
    nets = build_networks(cfg, opts, ckpt, ckpt_file, device, world)
    files = select_files(Path(opts.data), opts.offset, opts.limit)
    data = FaceData(files, cfg.image_size, cfg.crop, cache_max_bytes=int(opts.cache_max_gb * (1 << 30)))
    if len(data) // world // opts.batch_size == 0:
        raise ValueError(
            f"{opts.data}: {len(data)} images are fewer than one batch of {opts.batch_size} per process"
        )
    if nets.grow_bridges is not None and ckpt is None:
        fit_grown(nets.G, nets.D, nets.grow_bridges, data, opts, device)
    run = _Run(cfg, opts, nets, data, state, device, precision, rank, world)
    if rank == 0:
        ensure_folder(run.out)
        log.info(
            "training on %d images (%s), %d batches/epoch x %d process(es), device %s, %s%s",
            len(data), opts.data, run.per_epoch, world, device, precision,
            ", EMA of G" if nets.G_ema is not None else "",
        )  # fmt: skip
    # Ctrl-C takes effect between steps, so the checkpoint written on the way out is consistent.
    stop = _DeferredInterrupt(enabled=world == 1)
    try:
        while state.epoch < opts.epochs:
            run.epoch(stop)
    except KeyboardInterrupt:
        run.clock()
        run.save()
        if rank == 0:
            log.warning("interrupted: checkpoint written to %s; rerun with --resume to continue", ckpt_file)
        raise
    finally:
        stop.restore()
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()
    return ckpt_file


def start_grown(
    G: Generator, D: Discriminator, cfg: ModelConfig, small_path: Path
) -> dict[str, torch.Tensor]:
    """Start G and D (of cfg) from the layers of a model of half the size; returns the bridges
    that fade the new block in (grow.py)."""
    small = load_model(small_path)
    if grown_config(small.config) != cfg:
        raise ValueError(
            f"--grow-from {small_path}: a {small.config.image_size}-px model of widths "
            f"{small.config.ngf}/{small.config.ndf} grows into {grown_config(small.config)}, not {cfg}"
        )
    device = next(G.parameters()).device
    small.to(device)
    seed_from_small(G, D, small.generator, small.discriminator)
    log.info("grown from %s: every layer but the new top block starts from it", small_path)
    return bridges(small.generator, small.discriminator)


def fit_grown(
    G: Generator,
    D: Discriminator,
    br: dict[str, torch.Tensor],
    data: FaceData,
    opts: TrainOptions,
    device: torch.device,
) -> None:
    """Fit a grown model's new blocks to the layers they replace (grow.distil) before training."""

    def real(gen: torch.Generator) -> torch.Tensor:
        idx = torch.randint(0, len(data), (opts.batch_size,), generator=gen)
        return prepare_batch(data.images(idx.tolist()), gen, device, opts.channels_last)

    t0 = time.monotonic()
    err = distil(G, D, br["g_rgb"].to(device), br["d_rgb"].to(device), real, batch_size=opts.batch_size)
    log.info(
        "new blocks fitted to the small model in %.0f s (L1 error G %.0f %%, D %.0f %% of the start)",
        time.monotonic() - t0, 100 * err["g"], 100 * err["d"],
    )  # fmt: skip


def training_meta(
    opts: TrainOptions, st: TrainState, n_images: int, device: torch.device, world: int
) -> dict:
    return {
        "dataset": str(opts.data),
        "offset": opts.offset,
        "limit": opts.limit,
        "image_count": n_images,
        "epochs": st.epoch + st.step / max(1, n_images // (opts.batch_size * world)),
        "images_seen": st.images_seen,
        "wall_seconds": round(st.wall_seconds, 1),
        "device": f"{device.type} x{world}",
        "torch": str(torch.__version__),
        "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def export(checkpoint: Path, out: Path, use_ema: bool = True) -> None:
    """Write the shippable model bundle (no optimiser state) from a training checkpoint: the
    averaged G (batch-norm statistics re-estimated) where the run kept one, else G itself."""
    ckpt = load_checkpoint(Path(checkpoint))
    with _malformed(Path(checkpoint)):
        cfg = ModelConfig.from_dict(ckpt["config"])
        G, D = Generator(cfg), Discriminator(cfg)
        ema = ckpt.get("generator_ema") if use_ema else None
        G.load_state_dict(ema if ema is not None else ckpt["generator"])
        if ema is not None:
            recompute_batch_norm(G, cfg.nz)
        D.load_state_dict(ckpt["discriminator"])
        meta = dict(ckpt.get("meta", {}))
        meta["history"] = ckpt["state"]["history"]
        meta["generator"] = "ema" if ema is not None else "raw"
    save_model(out, cfg, G, D, None, meta)
