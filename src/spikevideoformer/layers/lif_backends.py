"""Which implementation runs a multi-step LIF, and the one graph-capture check (docs/design.md §1.3).

``layers/neuron.py`` calls :func:`lif_backend_for`, then :func:`forward` / :func:`backward`.
Backends, chosen per call (:func:`set_lif_backend`, env ``SVF_LIF_BACKEND``, default ``auto``;
on the CPU ``auto`` measures native against torch once per shape class and keeps the faster,
``layers/_lif_autotune.py``; ``SVF_LIF_AUTOTUNE=0`` takes native without measuring):

* ``"native"`` — a small C kernel (CPU, float32, scalar ``v_th``), ``layers/_lif_native.py``;
  built with the system C compiler on first use (``SVF_LIF_NATIVE=0`` disables it).
* ``"triton"`` — the same kernels in Triton for CUDA float32 tensors, ``layers/_lif_triton.py``.
* ``"torch"`` — PyTorch ops with preallocated buffers, any device / dtype / tensor threshold,
  ``layers/_lif_torch.py``; also what runs while a graph is captured (:func:`graph_capture`).
* ``"reference"`` — the readable autograd loop ``neuron.lif_reference`` (run by ``neuron.py``).

``forward(backend, x, p, store_h)`` returns ``(spikes, h or None)``; ``backward(backend, g, h,
p)`` overwrites the saved membrane ``h`` with the input gradient and returns it.
"""
from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING

import torch

from . import _lif_autotune, _lif_native, _lif_torch

if TYPE_CHECKING:
    from .neuron import NeuronParams

__all__ = [
    "LIF_BACKENDS", "set_lif_backend", "get_lif_backend", "available_lif_backends",
    "graph_capture", "lif_backend_for", "forward", "backward",
]

LIF_BACKENDS = ("auto", "reference", "native", "triton", "torch")
_CONFIGURED = {"name": os.environ.get("SVF_LIF_BACKEND", "auto").strip().lower() or "auto"}
if _CONFIGURED["name"] not in LIF_BACKENDS:
    warnings.warn(f"SVF_LIF_BACKEND={_CONFIGURED['name']!r} is not one of {LIF_BACKENDS}; "
                  "using 'auto'")
    _CONFIGURED["name"] = "auto"


def set_lif_backend(name: str) -> str:
    """Select the LIF implementation: ``"auto"`` (default), ``"reference"``, ``"native"``,
    ``"triton"`` or ``"torch"``. A fast backend that cannot handle a call (device, dtype,
    tensor threshold) falls back to ``"torch"``. Returns the previous setting."""
    name = str(name).strip().lower()
    if name not in LIF_BACKENDS:
        raise ValueError(f"LIF backend must be one of {LIF_BACKENDS}, got {name!r}")
    old, _CONFIGURED["name"] = _CONFIGURED["name"], name
    return old


def get_lif_backend() -> str:
    """The configured backend name (see :func:`set_lif_backend`)."""
    return _CONFIGURED["name"]


_TRITON: dict = {}


def _triton():
    """The ``_lif_triton`` module, or None when triton does not import (reason kept)."""
    if "module" not in _TRITON:
        try:
            from . import _lif_triton
            _TRITON["module"] = _lif_triton
        except Exception as e:  # noqa: BLE001 - any failure means "use the torch backend"
            _TRITON["module"], _TRITON["error"] = None, f"{type(e).__name__}: {e}"
    return _TRITON["module"]


def available_lif_backends() -> dict[str, str]:
    """``{backend: "ok" | reason it is unavailable}`` on this machine (builds the native kernel)."""
    out = {"reference": "ok", "torch": "ok"}
    lib = _lif_native._native_lib()
    out["native"] = "ok" if lib is not None else _lif_native._NATIVE.get("error", "unavailable")
    if not torch.cuda.is_available():
        out["triton"] = "no CUDA device"
    else:
        out["triton"] = "ok" if _triton() is not None else _TRITON.get("error", "unavailable")
    return out


def graph_capture() -> bool:
    """True while ``torch.jit`` traces or scripts, or ``torch.compile`` / ``torch.export``
    capture a graph: the C and Triton kernels are opaque calls there, so the traceable torch
    ops run instead (the neuron modules ask this one function)."""
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return True
    is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)  # torch >= 2.3
    return bool(is_compiling is not None and is_compiling())


def lif_backend_for(x: torch.Tensor, p: NeuronParams | None = None) -> str:
    """The backend that runs this input with these parameters (default parameters if None)."""
    want = _CONFIGURED["name"]
    if want in ("reference", "torch"):
        return want
    scalar_th = p is None or not isinstance(p.v_th, torch.Tensor)
    if x.dtype == torch.float32 and scalar_th and x.numel() > 0 and not graph_capture():
        device = x.device.type
        if device == "cpu" and want in ("auto", "native") and _lif_native._native_lib() is not None:
            return "native" if want == "native" else _lif_autotune.choose(x, p or _default_params())
        if device == "cuda" and want in ("auto", "triton") and _triton() is not None:
            return "triton"
    return "torch"


def _default_params() -> NeuronParams:
    from .neuron import DEFAULT
    return DEFAULT


def forward(backend: str, x: torch.Tensor, p: NeuronParams, store_h: bool):
    """``(spikes, h)`` of the fused forward loop (``h`` is None unless ``store_h``)."""
    if backend == "native":
        return _lif_native._native_forward(x, p, store_h)
    if backend == "triton":
        return _triton().triton_forward(x, p, store_h)
    return _lif_torch.torch_forward(x, p, store_h)


def backward(backend: str, g: torch.Tensor, h: torch.Tensor, p: NeuronParams) -> torch.Tensor:
    """Input gradient from the spikes' gradient ``g``, written into the saved membrane ``h``."""
    if backend == "native":
        return _lif_native._native_backward(g, h, p)
    if backend == "triton":
        return _triton().triton_backward(g, h, p)
    return _lif_torch.torch_backward(g, h, p)
