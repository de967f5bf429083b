"""``auto`` on the CPU: measure the native C kernel against the torch backend once, keep the faster.

The native kernel is not faster everywhere (on an AVX2-only EPYC the torch backend beat it,
on AVX-512 machines native wins by 4x), so the first ``auto`` call of each *shape class*
times both backends' forward + backward on a small tensor of that class (a few reps, median,
some tens of ms at most) and remembers the winner: in memory, and in a JSON file under the
cache folder (``~/.cache/spikevideoformer/lif_autotune.json``, written atomically) keyed by
CPU model, torch version, thread count, kernel version and the shape class. Both backends
give bit-identical spikes and gradients, so the choice changes speed only.

``SVF_LIF_AUTOTUNE=0`` turns measuring off (``auto`` then takes native whenever it builds);
a backend forced with ``set_lif_backend`` / ``SVF_LIF_BACKEND`` is never second-guessed.
Measuring uses its own random generator (the global RNG is untouched) and never runs while
a graph is captured (``lif_backends.lif_backend_for`` asks ``graph_capture()`` first).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
import threading
import time
from typing import TYPE_CHECKING

import torch

from ..machine import cpu_model
from . import _lif_native, _lif_torch

if TYPE_CHECKING:
    from .neuron import NeuronParams

__all__ = ["autotune_enabled", "choose", "cache_path", "choices", "clear"]

_FILE = "lif_autotune.json"
_MAX_ELEMS = 1 << 18  # measuring tensor: at most this many elements (1 MiB of float32)
_MAX_REPS, _MIN_REPS, _BUDGET_S = 5, 2, 0.02  # reps per backend, stopped by a time budget
_LOCK = threading.Lock()
_MEM: dict[str, dict] = {}  # key -> {"backend", "native_ms", "torch_ms", "source"}
_STATE: dict = {}  # "loaded": bool (disk cache read into _MEM)
_clock = time.perf_counter  # tests replace this to make a backend look faster


def autotune_enabled() -> bool:
    return os.environ.get("SVF_LIF_AUTOTUNE", "1").strip().lower() not in ("0", "false", "no", "off")


def cache_path() -> str:
    return os.path.join(_lif_native._cache_dir(), _FILE)


_MACHINE: dict = {}


def _machine_key() -> str:
    if "key" not in _MACHINE:
        kernel = hashlib.sha256(_lif_native._NATIVE_SRC.encode()).hexdigest()[:8]
        _MACHINE["key"] = f"{cpu_model()}|torch {torch.__version__}|kernel {kernel}"
    return _MACHINE["key"]


def shape_class(x: torch.Tensor) -> tuple[int, int]:
    """``(T, log2 bucket of numel)``: calls in one class share a measurement."""
    return int(x.shape[0]), max(0, int(math.log2(max(1, x.numel()))))


def key_for(x: torch.Tensor) -> str:
    T, b = shape_class(x)
    return (f"{_machine_key()}|threads {torch.get_num_threads()}|{x.device.type}|"
            f"{str(x.dtype).replace('torch.', '')}|T{T}|2^{b}")


def _load() -> None:
    if _STATE.get("loaded"):
        return
    _STATE["loaded"] = True
    for k, v in _read_disk().items():
        _MEM.setdefault(k, {**v, "source": "disk"})


def _read_disk() -> dict:
    try:
        with open(cache_path()) as f:
            data = json.load(f)
        entries = data.get("entries", {}) if isinstance(data, dict) else {}
        return {k: v for k, v in entries.items()
                if isinstance(v, dict) and v.get("backend") in ("native", "torch")}
    except (OSError, ValueError):
        return {}


def _write_disk(key: str, entry: dict) -> None:
    """Merge one entry into the file (other processes' entries are kept); best effort."""
    from ..atomic import write_json
    entries = _read_disk()
    entries[key] = {k: v for k, v in entry.items() if k != "source"}
    try:
        write_json(cache_path(), {"version": 1, "entries": entries})
    except OSError:
        pass  # read-only home: the in-memory choice still holds for this process


def _time_backend(name: str, x: torch.Tensor, g: torch.Tensor, p: NeuronParams) -> float:
    """Median seconds of one forward + backward through backend ``name`` (one warm-up call)."""
    fwd = _lif_native._native_forward if name == "native" else _lif_torch.torch_forward
    bwd = _lif_native._native_backward if name == "native" else _lif_torch.torch_backward
    times: list[float] = []
    spent = 0.0
    for i in range(_MAX_REPS + 1):
        t0 = _clock()
        _, h = fwd(x, p, True)
        bwd(g, h, p)
        dt = _clock() - t0
        if i:  # the first call is a warm-up (page faults, thread pool start)
            times.append(dt)
        spent += dt
        if i >= _MIN_REPS and spent > _BUDGET_S:
            break
    return statistics.median(times)


def _measure(x: torch.Tensor, p: NeuronParams) -> dict:
    T, b = shape_class(x)
    n = max(1, min(1 << b, _MAX_ELEMS) // T)
    gen = torch.Generator().manual_seed(0)  # the global RNG stays untouched
    with torch.no_grad():
        xs = torch.randn(T, n, generator=gen) * 1.5 + 0.7
        gs = torch.randn(T, n, generator=gen)
        t = {name: _time_backend(name, xs, gs, p) for name in ("native", "torch")}
    return {"backend": "torch" if t["torch"] < t["native"] else "native",
            "native_ms": round(t["native"] * 1e3, 4), "torch_ms": round(t["torch"] * 1e3, 4),
            "elements": T * n, "source": "measured"}


def choose(x: torch.Tensor, p: NeuronParams) -> str:
    """``"native"`` or ``"torch"`` for a CPU float32 call that both can run."""
    if not autotune_enabled():
        return "native"
    key = key_for(x)
    entry = _MEM.get(key)
    if entry is None:
        with _LOCK:
            _load()
            entry = _MEM.get(key)
            if entry is None:
                entry = _measure(x, p)
                _MEM[key] = entry
                _write_disk(key, entry)
    return entry["backend"]


def choices() -> dict[str, dict]:
    """The choices known to this process (measured here or read from the cache file)."""
    return {k: dict(v) for k, v in _MEM.items()}


def clear(disk: bool = False) -> None:
    """Forget the in-memory choices (and delete the cache file with ``disk=True``)."""
    with _LOCK:
        _MEM.clear()
        _STATE.clear()
        if disk:
            try:
                os.remove(cache_path())
            except OSError:
                pass
