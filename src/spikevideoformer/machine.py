"""What machine this is: the CPU model name that benchmarks print and the LIF autotune cache
is keyed by (one reader of ``/proc/cpuinfo`` for the whole package)."""
from __future__ import annotations

import platform

__all__ = ["cpu_model"]


def cpu_model() -> str:
    """The CPU model name (x86 ``model name``; Arm ``Hardware`` / ``cpu model`` lines), else
    what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "Hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"
