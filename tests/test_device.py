"""Threads that fit the machine as it is (device.free_threads): the cores other processes leave free."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from completion import device


def _feed(monkeypatch: pytest.MonkeyPatch, readings: list[tuple[float, float, float]]) -> None:
    it = iter(readings)
    monkeypatch.setattr(device, "_cpu_times", lambda: next(it))


def test_meter_counts_other_processes_not_this_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # (wall, machine busy, own): over 2 s the machine was busy 3.2 CPU-s, 1.2 of them ours.
    _feed(monkeypatch, [(10.0, 100.0, 5.0), (12.0, 103.2, 6.2), (12.01, 103.3, 6.2)])
    meter = device.CpuMeter()
    assert meter.others() == pytest.approx(1.0)
    # A reading too soon after the last keeps the last measurement (10 ms ticks say too little).
    assert meter.others() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("cpus", "busy", "threads"), [(2, 0.1, 2), (2, 0.9, 1), (2, 1.9, 1), (8, 2.2, 6), (4, 9.0, 1)]
)
def test_free_threads_takes_the_cores_others_leave(
    monkeypatch: pytest.MonkeyPatch, cpus: int, busy: float, threads: int
) -> None:
    class Meter:
        def others(self) -> float:
            return busy

    monkeypatch.setattr(device, "usable_cpus", lambda: cpus)
    assert device.free_threads(Meter()) == threads  # type: ignore[arg-type]


def test_free_threads_without_proc_reads_the_load_average(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device, "_cpu_times", lambda: None)
    monkeypatch.setattr(device, "usable_cpus", lambda: 4)
    monkeypatch.setattr(device.os, "getloadavg", lambda: (3.0, 0.0, 0.0))
    assert device.free_threads(device.CpuMeter()) == 1


def test_usable_cpus_honours_a_cgroup_quota(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5})
    monkeypatch.setattr(device, "_cgroup_quota", lambda: 1.5)
    assert device.usable_cpus() == 2
    monkeypatch.setattr(device, "_cgroup_quota", lambda: None)
    assert device.usable_cpus() == 6


def test_set_threads_gives_an_explicit_count_and_otherwise_measures(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    try:
        assert device.set_threads(1) == 1 and torch.get_num_threads() == 1
        monkeypatch.setattr(device, "free_threads", lambda meter=None: 2)
        assert device.set_threads(0) == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")
def test_meter_sees_a_busy_process_beside_it() -> None:
    """A real reading: a child spinning on one core shows as (most of) a busy core."""
    meter = device.CpuMeter()
    child = subprocess.Popen(
        [sys.executable, "-c", "import time\nt = time.time() + 1.0\nwhile time.time() < t: pass"]
    )
    child.wait()
    # Loose bound: the child may share its core with whatever else this machine runs.
    assert meter.others() >= 0.3
