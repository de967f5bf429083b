"""Measuring: wall / CPU time of interleaved candidates, peak memory, the machine.

Peak memory. On CUDA: ``torch.cuda.max_memory_allocated`` after a reset, minus the memory
allocated before the measured call. On CPU there is no allocator high-water mark, so the
measured call runs once under ``torch.profiler`` with ``profile_memory=True``; every
allocation and free of the PyTorch CPU allocator is an event with a signed byte count, and
the peak is the maximum of their running sum (bytes above what was live before the call:
inputs, parameters and optimizer state are not counted, outputs and gradients are).
That profiled run doubles as the warm-up; timed runs are never profiled.
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Callable

import torch

from ...layers.neuron import get_lif_backend
from ...machine import cpu_model
from .spikingjelly_adapter import spikingjelly_version

__all__ = ["machine_info", "peak_memory", "time_interleaved", "tune_malloc"]


# --------------------------------------------------------------------------- machine
def _cpu_flags() -> str | None:
    """The SIMD flags that matter for the LIF kernels (x86: avx2 / avx512f; Arm: neon / sve)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("flags", "features")):
                    have = set(line.split(":", 1)[1].split())
                    return " ".join(k for k in ("avx2", "fma", "avx512f", "asimd", "sve")
                                    if k in have) or "none of avx2/avx512f"
    except OSError:
        pass
    return None


def machine_info(device: str = "cpu") -> dict:
    """CPU model, threads, torch version (and GPU name on CUDA) of this run."""
    info = {
        "cpu": cpu_model(),
        "cpu_flags": _cpu_flags(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "lif_backend": get_lif_backend(),
    }
    try:
        info["loadavg"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except (OSError, AttributeError):
        pass
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    info["spikingjelly"] = spikingjelly_version()
    return info



# --------------------------------------------------------------------------- measuring
def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class _quiet_stderr:
    """Silence file descriptor 2 (C++ log lines) for a moment; no-op where it cannot."""

    def __enter__(self):
        self.saved = None
        try:
            import sys
            sys.stderr.flush()
            self.devnull = os.open(os.devnull, os.O_WRONLY)
            self.saved = os.dup(2)
            os.dup2(self.devnull, 2)
        except (OSError, ValueError, AttributeError):
            self.saved = None
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            os.dup2(self.saved, 2)
            os.close(self.saved)
            os.close(self.devnull)


def peak_memory(fn: Callable[[], object], device: str = "cpu") -> int:
    """Peak bytes allocated by ``fn()`` above what was live before it (see module doc)."""
    if device.startswith("cuda"):
        _sync(device)
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        _sync(device)
        return int(torch.cuda.max_memory_allocated() - base)
    from torch.profiler import ProfilerActivity, profile
    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _quiet_stderr():  # the profiler prints start/stop lines on fd 2
        prof.__enter__()
    try:
        fn()
    finally:
        with _quiet_stderr():
            prof.__exit__(None, None, None)
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]" and "CPU" in str(e.device_type()).upper())
    cur = peak = 0
    for _, nbytes in events:
        cur += nbytes
        peak = max(peak, cur)
    return int(peak)


def time_interleaved(fns: dict[str, Callable[[], object]], reps: int = 3, warmup: int = 1,
                     device: str = "cpu", cpu_times: dict | None = None) -> dict[str, list[float]]:
    """Run every candidate ``warmup`` times, then ``reps`` rounds of one call each (order
    rotated every round); returns the wall times in seconds per candidate. If ``cpu_times`` is
    a dict it receives the process CPU times of the same calls (``time.process_time``: robust
    to other programs taking the cores; equal to wall time for single-threaded work on an idle
    machine)."""
    names = list(fns)
    for _ in range(warmup):
        for n in names:
            fns[n]()
    out: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for r in range(reps):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            _sync(device)
            c0, t0 = time.process_time(), time.perf_counter()
            fns[n]()
            _sync(device)
            out[n].append(time.perf_counter() - t0)
            cpu[n].append(time.process_time() - c0)
    if cpu_times is not None:
        cpu_times.update(cpu)
    return out


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def _cpu_ms(cpu: dict, name: str, device: str) -> float | None:
    """Median process CPU time in ms (CPU runs only; meaningless for GPU work)."""
    if device.startswith("cuda") or not cpu.get(name):
        return None
    return _median(cpu[name]) * 1e3



def tune_malloc() -> bool:
    """Ask glibc to keep freed memory for reuse instead of returning big blocks to the OS
    (``mallopt(M_MMAP_THRESHOLD / M_TRIM_THRESHOLD)``, like ``MALLOC_MMAP_THRESHOLD_``): large
    fresh allocations otherwise page-fault on every forward, which grows faster than linearly
    with the tensor size. Returns False where glibc is not available."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, 2**30) == 1
        ok = libc.mallopt(m_trim_threshold, 2**31 - 1) == 1 and ok
        return ok
    except (OSError, AttributeError):
        return False
