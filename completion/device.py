"""Where and in what arithmetic the networks run: one rule for training and completion.

bf16 is chosen only where the hardware computes it (a CUDA GPU with bf16, or a CPU with AVX-512
BF16 / AMX / Arm BF16); elsewhere PyTorch emulates it about 40x slower than fp32, so an explicit
bf16 there is refused instead of left to crawl."""

from __future__ import annotations

from pathlib import Path

import torch


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """True when the CPU computes bfloat16 in hardware (AVX-512 BF16 or AMX on x86, BF16 on Arm),
    read from /proc/cpuinfo (or the given text). Without it PyTorch emulates bf16 and autocast runs
    ~40x slower than fp32; where the flags cannot be read, the answer is no."""
    text = cpuinfo
    if text is None:
        try:
            text = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.partition(":")[2].split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> 'bf16' where the device has native bf16, else 'fp32'. An explicit 'bf16' on a CPU
    without it is refused (ValueError) rather than left to crawl."""
    if device.type == "cuda":
        native = torch.cuda.is_bf16_supported()
    else:
        native = device.type == "cpu" and cpu_has_native_bf16()
    if precision == "auto":
        return "bf16" if native else "fp32"
    if precision == "bf16" and not native:
        raise ValueError(
            f"--precision bf16: this {device.type.upper()} has no native bfloat16 units, where bf16 "
            "runs ~40x slower than fp32; use --precision fp32 (or auto)"
        )
    return precision


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device cuda requested but no CUDA device is available")
        return torch.device("cuda", local_rank)
    return torch.device(name)
