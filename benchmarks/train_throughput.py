"""Training throughput: the project's DCGAN step against the pytorch/examples DCGAN step.

Both run in this one process on the same in-memory uint8 batches (real CelebA faces when
../shared/datasets/celeba_subset exists, else random pixels), 64x64 images at width 64, Adam
(2e-4, 0.5). Repetitions alternate (A B A B ...) so that load from other processes falls on both
alike. Besides images/s, each step's FLOPs are counted once with FlopCounterMode and the achieved
GFLOP/s is set against this machine's measured float32 matmul rate at the same thread count.

    .venv/bin/python benchmarks/train_throughput.py [--batches 6] [--reps 3] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from completion.config import ModelConfig
from completion.data import decode_all, select_files
from completion.train import make_optimizers, prepare_batch, step_generator, train_step

REPO = Path(__file__).resolve().parents[1]
SHARED_FACES = REPO / ".." / "shared" / "datasets" / "celeba_subset" / "img_align_celeba"
N_IMAGES = 640
LR, BETA1 = 2e-4, 0.5


# --- reference: pytorch/examples dcgan/main.py -------------------------------------------------


def ref_weights_init(m: nn.Module) -> None:
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        torch.nn.init.normal_(m.weight, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        torch.nn.init.normal_(m.weight, 1.0, 0.02)
        torch.nn.init.zeros_(m.bias)


class RefGenerator(nn.Module):
    def __init__(self, nz: int, ngf: int, nc: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 8),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
            nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


class RefDiscriminator(nn.Module):
    def __init__(self, ndf: int, nc: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).view(-1, 1).squeeze(1)


class Reference:
    """The examples' training step, verbatim in structure: BCELoss on a Sigmoid, label tensors,
    real and fake D losses backwarded separately, G step through D with D's grads enabled."""

    name = "reference"

    def __init__(self, cfg: ModelConfig) -> None:
        torch.manual_seed(0)
        self.nz = cfg.nz
        self.netG = RefGenerator(cfg.nz, cfg.ngf, cfg.nc)
        self.netG.apply(ref_weights_init)
        self.netD = RefDiscriminator(cfg.ndf, cfg.nc)
        self.netD.apply(ref_weights_init)
        self.criterion = nn.BCELoss()
        self.optimizerD = torch.optim.Adam(self.netD.parameters(), lr=LR, betas=(BETA1, 0.999))
        self.optimizerG = torch.optim.Adam(self.netG.parameters(), lr=LR, betas=(BETA1, 0.999))
        self.i = 0

    def step(self, batch: torch.Tensor) -> None:
        real_label, fake_label = 1, 0
        # ToTensor + Normalize((0.5,)*3, (0.5,)*3), as the examples' transform does per batch.
        real_cpu = batch.float().div(255).sub(0.5).div(0.5)
        self.netD.zero_grad()
        batch_size = real_cpu.size(0)
        label = torch.full((batch_size,), real_label, dtype=real_cpu.dtype)
        output = self.netD(real_cpu)
        errD_real = self.criterion(output, label)
        errD_real.backward()
        output.mean().item()  # D_x
        noise = torch.randn(batch_size, self.nz, 1, 1)
        fake = self.netG(noise)
        label.fill_(fake_label)
        output = self.netD(fake.detach())
        errD_fake = self.criterion(output, label)
        errD_fake.backward()
        output.mean().item()  # D_G_z1
        errD = errD_real + errD_fake
        self.optimizerD.step()

        self.netG.zero_grad()
        label.fill_(real_label)
        output = self.netD(fake)
        errG = self.criterion(output, label)
        errG.backward()
        output.mean().item()  # D_G_z2
        self.optimizerG.step()
        _ = (errD.item(), errG.item())  # the examples print both every step
        self.i += 1


# --- the project's step, set up exactly as completion.train.train() does -------------------------


class Project:
    name = "project"

    def __init__(self, cfg: ModelConfig, precision: str = "fp32") -> None:
        self.precision = precision
        from completion.models import Discriminator, Generator

        torch.manual_seed(0)
        self.cfg = cfg
        self.device = torch.device("cpu")
        self.G = Generator(cfg).to(memory_format=torch.channels_last)
        self.D = Discriminator(cfg).to(memory_format=torch.channels_last)
        self.opt_g, self.opt_d = make_optimizers(self.G, self.D, LR, BETA1)
        self.i = 0

    def step(self, batch: torch.Tensor) -> None:
        gen = step_generator(0, 0, 0, self.i)
        real = prepare_batch(batch, gen, self.device, True)
        z = (torch.rand(real.shape[0], self.cfg.nz, generator=gen) * 2 - 1).to(self.device)
        m = train_step(self.G, self.D, self.D, self.opt_g, self.opt_d, real, z, 0.0, self.precision)
        _ = {k: float(v) for k, v in m.items()}  # train() reads every metric each step
        self.i += 1


# --- measurement -------------------------------------------------------------------------------


def load_data(batch_size: int, size: int, crop: str) -> tuple[torch.Tensor, str]:
    if SHARED_FACES.is_dir():
        images, skipped = decode_all(select_files(SHARED_FACES, 0, N_IMAGES), size, crop)
        return images, f"{len(images)} CelebA faces from {SHARED_FACES.resolve()} ({skipped} skipped)"
    g = torch.Generator().manual_seed(0)
    n = max(N_IMAGES, batch_size)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g), f"{n} random images"


def batch_at(data: torch.Tensor, i: int, batch_size: int) -> torch.Tensor:
    per_pass = len(data) // batch_size
    b = i % per_pass
    return data[b * batch_size : (b + 1) * batch_size]


def run_steps(impl: Project | Reference, data: torch.Tensor, batch_size: int, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        impl.step(batch_at(data, impl.i, batch_size))
    return time.perf_counter() - t


def step_flops(make: Callable[[], Project | Reference], batch: torch.Tensor) -> int:
    impl = make()
    impl.step(batch)  # first step allocates optimiser state; count a steady-state one
    with FlopCounterMode(display=False) as counter:
        impl.step(batch)
    return counter.get_total_flops()


def matmul_gflops(seconds: float = 2.0, n: int = 2048) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        torch.mm(a, b)
    rates = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(rates) < 3:
        t = time.perf_counter()
        torch.mm(a, b)
        rates.append(2 * n**3 / (time.perf_counter() - t) / 1e9)
    return max(rates)  # the machine's rate; lower samples are other processes' load


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, default=6, help="timed batches per repetition (default 6)")
    p.add_argument("--warmup", type=int, default=2, help="untimed batches per model first (default 2)")
    p.add_argument("--reps", type=int, default=3, help="alternating repetitions of each (default 3)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="intra-op threads")
    p.add_argument("--width", type=int, default=64, help="ngf = ndf (default 64)")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    # 64x64: the examples' architecture, and the project's default model.
    cfg = ModelConfig(image_size=64, ngf=args.width, ndf=args.width)
    data, source = load_data(args.batch_size, cfg.image_size, cfg.crop)
    if len(data) < args.batch_size:
        raise SystemExit(f"only {len(data)} images for a batch of {args.batch_size}")
    print(f"torch {torch.__version__}, {args.threads} thread(s), data: {source}")
    print(f"model: {cfg.image_size}x{cfg.image_size}, ngf=ndf={args.width}, batch {args.batch_size}")

    makers = {
        "project": lambda: Project(cfg),
        "reference": lambda: Reference(cfg),
        "proj-bf16": lambda: Project(cfg, "bf16"),  # completion train --precision bf16
    }
    flops = {k: step_flops(m, batch_at(data, 0, args.batch_size)) for k, m in makers.items()}
    impls = {k: m() for k, m in makers.items()}
    for impl in impls.values():
        run_steps(impl, data, args.batch_size, args.warmup)

    rates: dict[str, list[float]] = {k: [] for k in impls}
    total: dict[str, float] = dict.fromkeys(impls, 0.0)
    for rep in range(args.reps):
        for k in list(impls) if rep % 2 == 0 else list(impls)[::-1]:
            dt = run_steps(impls[k], data, args.batch_size, args.batches)
            total[k] += dt
            rates[k].append(args.batches * args.batch_size / dt)
        print(f"  rep {rep + 1}: " + ", ".join(f"{k} {rates[k][-1]:.1f} img/s" for k in impls))

    peak = matmul_gflops()
    print(f"\nfloat32 matmul 2048x2048, {args.threads} thread(s): {peak:.1f} GFLOP/s (best sample)")
    print(f"{'':10} {'img/s':>8} {'min':>8} {'max':>8} {'GFLOP/step':>11} {'GFLOP/s':>8} {'of matmul':>9}")
    ips = {}
    for k in impls:
        ips[k] = args.reps * args.batches * args.batch_size / total[k]
        gflops = flops[k] / 1e9 * ips[k] / args.batch_size
        print(
            f"{k:10} {ips[k]:8.1f} {min(rates[k]):8.1f} {max(rates[k]):8.1f} "
            f"{flops[k] / 1e9:11.2f} {gflops:8.1f} {100 * gflops / peak:8.1f}%"
        )
    print(f"\nproject / reference: {ips['project'] / ips['reference']:.2f}x images/s")
    print(f"project with --precision bf16 / reference: {ips['proj-bf16'] / ips['reference']:.2f}x images/s")
    if max(ips[k] * flops[k] / args.batch_size / 1e9 for k in ips) > peak:
        print(
            "  note: above 100% means the convolutions (oneDNN) outrun torch.mm (MKL) here; MKL's sgemm"
            " does not reach the peak of every CPU (AMD ones especially), or load from other processes"
            " depressed the matmul samples"
        )
    med = statistics.median(rates["project"]) / statistics.median(rates["reference"])
    print(f"  (ratio of per-rep medians: {med:.2f}x)")


if __name__ == "__main__":
    main()
