"""Where and in what arithmetic the networks run: one rule for training and completion.

bf16 is chosen only where the hardware computes it (a CUDA GPU with bf16, or a CPU with AVX-512
BF16 / AMX / Arm BF16); elsewhere PyTorch emulates it about 40x slower than fp32, so an explicit
bf16 there is refused instead of left to crawl."""

from __future__ import annotations

import functools
import math
import os
import time
from pathlib import Path

import torch


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """True when the CPU computes bfloat16 in hardware (AVX-512 BF16 or AMX on x86, BF16 on Arm),
    read from /proc/cpuinfo (or the given text). Without it PyTorch emulates bf16 and autocast runs
    ~40x slower than fp32; where the flags cannot be read, the answer is no."""
    flags = _cpu_flags(cpuinfo) if cpuinfo is not None else _this_cpus_flags()
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


@functools.cache
def _this_cpus_flags() -> frozenset[str]:
    """This machine's CPU flags, read once (every request asks; reading /proc/cpuinfo took 0.6 ms)."""
    try:
        return _cpu_flags(Path("/proc/cpuinfo").read_text())
    except OSError:
        return frozenset()


def _cpu_flags(cpuinfo: str) -> frozenset[str]:
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.partition(":")[2].split())
    return frozenset(flags)


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


# --- Threads: as many as the machine has free when a job starts -------------------------------
# Two torch jobs that each take every core make both crawl (a one-face completion beside another
# torch job: 8-10 s instead of 0.23 s, as OpenMP's spinning threads wait on each other), while one
# thread per job keeps each near its own speed. So a job takes the cores no other process is using.


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity, capped by a cgroup CPU quota (containers)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(cpus, math.ceil(quota))) if quota else max(1, cpus)


def _cgroup_quota() -> float | None:
    """cgroup v2 cpu.max or v1 cfs_quota/period in CPUs; None where there is no quota."""
    try:
        quota, _, period = Path("/sys/fs/cgroup/cpu.max").read_text().partition(" ")
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        q = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        p = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return q / p if q > 0 and p > 0 else None
    except (OSError, ValueError):
        return None


def _cpu_times() -> tuple[float, float, float] | None:
    """(wall seconds, CPU seconds the whole machine spent busy, CPU seconds of this process), from
    /proc; None where it cannot be read (not Linux)."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        own = Path("/proc/self/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    hz = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal: busy is all but idle and iowait
    ticks = [int(v) for v in first[1:9]]
    busy = sum(ticks) - ticks[3] - ticks[4]
    return time.monotonic(), busy / hz, (int(own[11]) + int(own[12])) / hz  # utime + stime


class CpuMeter:
    """How many cores other processes keep busy: the machine's busy time minus this process's own,
    over the interval since the last reading. Start one early (a CLI run measures while it loads
    its model; a server between requests)."""

    MIN_WINDOW = 0.1  # seconds: below this the kernel's 10 ms ticks say too little

    def __init__(self) -> None:
        self._last = _cpu_times()
        self._busy: float | None = None

    def others(self) -> float | None:
        """Cores busy with other processes since the last reading (None where /proc is missing or
        no interval has passed yet)."""
        now = _cpu_times()
        if now is None or self._last is None:
            return None
        dt = now[0] - self._last[0]
        if dt >= self.MIN_WINDOW:
            self._busy = max(0.0, (now[1] - self._last[1]) - (now[2] - self._last[2])) / dt
            self._last = now
        return self._busy


def free_threads(meter: CpuMeter | None = None) -> int:
    """Threads for a job starting now: the usable CPUs that other processes leave free (at least
    one). Without a measurement it reads the 1-minute load average, which lags but counts others."""
    cpus = usable_cpus()
    busy = meter.others() if meter is not None else None
    if busy is None:
        try:
            busy = os.getloadavg()[0]
        except OSError:
            busy = 0.0
    return max(1, min(cpus, math.floor(cpus - busy + 0.5)))


def set_threads(threads: int = 0, meter: CpuMeter | None = None) -> int:
    """torch's CPU threads for the next job: `threads` if given (> 0), else free_threads(meter).
    Returns the number set."""
    n = threads if threads > 0 else free_threads(meter)
    if n != torch.get_num_threads():
        torch.set_num_threads(n)
    return n
