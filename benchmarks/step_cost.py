"""Cost of one step of the z search (G forward, contextual loss, backward to z) by implementation.

Variants, each timed in this process against "plain" (the eval-mode generator as trained):
folded (batch norm folded into the convolutions), channels_last, torch.compile of the folded
generator, bf16 autocast, search (models.search_generator: folded, channels-last, the first layer
as one matrix multiply; what completion runs in fp32), search_autocast (the same under bf16
autocast), search_bf16 (its weights cast to bf16 once), packed (search with oneDNN's weights
packed once, packed.py: what completion runs on the CPU in fp32), packed_bf16 (the same in bf16
but for the latent projection, kept fp32 by models.in_precision: what completion runs under bf16)
and packed_all_bf16 (every weight bf16, the latent projection too: the bf16 default before).
For each batch size: milliseconds per step and per image-step, the
speed ratio against the first variant, and the largest difference of G(z) from plain. Variants
are timed in interleaved rounds (median), since this kind of CPU drifts by tens of percent.

    python benchmarks/step_cost.py [--batch-sizes 1,64] [--steps 50] [--variants plain,folded,...]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from completion.bundle import default_model_path, load_model
from completion.models import fold_batch_norm, in_precision, search_generator
from completion.packed import pack_generator


def make(variant: str, generator: torch.nn.Module) -> tuple[torch.nn.Module, bool]:
    """The generator for a variant, and whether it runs under bf16 autocast."""
    if variant == "plain":
        return generator, False
    if variant == "folded":
        return fold_batch_norm(generator), False
    if variant == "channels_last":
        return fold_batch_norm(generator).to(memory_format=torch.channels_last), False
    if variant == "compiled":
        return torch.compile(fold_batch_norm(generator)), False
    if variant == "bf16":
        return fold_batch_norm(generator), True
    if variant in ("search", "search_autocast"):
        return search_generator(generator), variant == "search_autocast"
    if variant == "search_bf16":
        return search_generator(generator).to(torch.bfloat16), False
    if variant == "packed":
        return pack_generator(search_generator(generator)), False
    if variant == "packed_bf16":
        return pack_generator(in_precision(search_generator(generator), torch.bfloat16)), False
    if variant == "packed_all_bf16":
        return pack_generator(search_generator(generator).to(torch.bfloat16)), False
    raise SystemExit(f"unknown variant {variant}")


def stepper(g: torch.nn.Module, bf16: bool, batch: int, nz: int, size: int) -> Callable[[], None]:
    """One search step of `g` on a fixed batch (warmed up: oneDNN builds its kernels first)."""
    gen = torch.Generator().manual_seed(0)
    z = (torch.rand(batch, nz, generator=gen) * 2 - 1).requires_grad_(True)
    y = torch.rand(batch, 3, size, size, generator=gen) * 2 - 1
    w = torch.rand(batch, 1, size, size, generator=gen)
    dtype = next(g.parameters()).dtype  # the first layer's: bf16 for a generator cast whole, else fp32

    def step() -> None:
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with ctx:
            out = g(z.to(dtype))
        (w * (out.float() - y).abs()).sum().backward()
        z.grad = None

    for _ in range(5):  # warm-up (and compilation)
        step()
    return step


def interleaved(steps: dict[str, Callable[[], None]], n: int, rounds: int) -> dict[str, float]:
    """Median seconds per step of each variant over `rounds` rounds, every round timing each
    variant in turn, so that a drift in the CPU's speed falls on all of them alike."""
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(rounds):
        for k, step in steps.items():
            t0 = time.perf_counter()
            for _ in range(n):
                step()
            times[k].append((time.perf_counter() - t0) / n)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=default_model_path())
    ap.add_argument("--batch-sizes", default="1,64")
    ap.add_argument("--steps", type=int, default=50, help="steps per timing")
    ap.add_argument("--rounds", type=int, default=5, help="timings of each variant, interleaved")
    variants = "plain,folded,channels_last,compiled,bf16,search,search_autocast,search_bf16"
    variants += ",packed,packed_bf16,packed_all_bf16"
    ap.add_argument("--variants", default=variants)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model)
    cfg = model.config
    probe = torch.rand(8, cfg.nz, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        reference = model.generator(probe)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| variant | batch | ms / step | ms / image-step | speed vs plain | max abs diff of G(z) |")
    print("|---|---:|---:|---:|---:|---:|")
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        steps, diffs = {}, {}
        for variant in args.variants.split(","):
            g, bf16 = make(variant, model.generator)
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = g(probe.to(next(g.parameters()).dtype)).float()
            diffs[variant] = float((out - reference).abs().max())
            steps[variant] = stepper(g, bf16, batch, cfg.nz, cfg.image_size)
        times = interleaved(steps, args.steps, args.rounds)
        base = next(iter(times.values()))
        for variant, t in times.items():
            cells = [variant, str(batch), f"{t * 1e3:.2f}", f"{t * 1e3 / batch:.3f}", f"{base / t:.2f}x"]
            print("| " + " | ".join(cells) + f" | {diffs[variant]:.1e} |", flush=True)


if __name__ == "__main__":
    main()
