"""Multi-step LIF and Integer-LIF neurons (docs/design.md §1).

One video frame is one time step. The membrane state lives only inside one call:
``lif_multistep(x)`` starts at ``v = v_reset`` for every clip, so nothing leaks between
calls or between samples of a batch.

Two implementations share one set of equations:

* ``lif_reference`` — a plain autograd loop, easy to read, used by tests as the oracle;
* ``LIFFunction`` — a custom ``torch.autograd.Function`` that runs the time loop without
  autograd bookkeeping and stores only the membrane ``h`` (one tensor in the input dtype) for
  backward. Spikes are re-derived from ``h`` in backward, and the backward pass writes the
  input gradient into that same buffer, so one LIF costs ``h`` + spikes in forward and nothing
  more in backward. In inference (no grad needed) ``h`` is not stored at all.

Equations (docs/design.md §1, eqs. (1.1)-(1.4)), ``decay_input=True``::

    h[t] = v[t-1] + (x[t] - (v[t-1] - v_reset)) / tau
    s[t] = Heaviside(h[t] - v_th)                      # ties fire
    v[t] = h[t] * (1 - s[t]) + v_reset * s[t]          # hard reset
    v[t] = h[t] - v_th * s[t]                          # soft reset

Backward: surrogate ``d s / d h = alpha * sigmoid'(alpha * (h - v_th))``; with
``detach_reset`` the reset term is treated as a constant.

Integer-LIF (``spike_max = D > 1``): the fired value is ``clamp(round(h), 0, D)``, the reset
subtracts the fired amount, and the output is normalised by ``D`` (``s / D``) so activations
stay in [0, 1]; at inference a spike of value k equals k binary spikes and the ``1/D`` folds
into the next layer's weights. Gradient: straight-through ``1/D`` inside (0, D).
``D = 1`` is the binary LIF above.

Backends of ``LIFFunction`` (chosen per call, see :func:`set_lif_backend`):

* ``"native"`` — a small C kernel (CPU, float32, scalar ``v_th``): one pass over memory per
  direction, time loop innermost per block of neurons. Compiled with the system C compiler
  on first use (about a second, cached under ``~/.cache/spikevideoformer``) and loaded with
  ``ctypes``; nothing is compiled at import. If no compiler is found or the build fails, the
  ``"torch"`` backend is used silently (``SVF_LIF_NATIVE=0`` disables it).
* ``"triton"`` — the same kernels in Triton (``layers/_lif_triton.py``) for CUDA float32
  tensors, when ``triton`` imports.
* ``"torch"`` — pure PyTorch ops with preallocated buffers (any device / dtype, tensor
  thresholds); always available.

All backends give bit-identical spikes (the forward arithmetic is the same IEEE float
operations in the same order as ``lif_reference``) and gradients equal to ``lif_reference``
up to float rounding of the surrogate.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "LIFParams", "lif_reference", "lif_multistep", "LIFFunction", "LIF", "NeuronSpec",
    "LIF_BACKENDS", "set_lif_backend", "get_lif_backend", "available_lif_backends",
    "lif_backend_for", "compact_spike_storage",
]

from ._lif_common import LIFParams, _charge, _sg
from ._lif_native import _NATIVE, _native_backward, _native_forward, _native_lib
from ._lif_torch import _torch_backward, _torch_forward
from .spike_storage import _SPIKE_REG, _register_spikes, compact_spike_storage


class _SigmoidHeaviside(torch.autograd.Function):
    """Heaviside forward, sigmoid-surrogate backward (used by the reference loop)."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, alpha: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(u)
        ctx.alpha = alpha
        return (u >= 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (u,) = ctx.saved_tensors
        return grad * _sg(u, ctx.alpha), None


class _RoundClampSTE(torch.autograd.Function):
    """``clamp(round(h), 0, D)`` forward, straight-through gradient inside (0, D)."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, d: int) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(h)
        ctx.d = d
        return torch.clamp(torch.round(h), 0, d)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (h,) = ctx.saved_tensors
        return grad * ((h > 0) & (h < ctx.d)).to(grad.dtype), None


def lif_reference(x: torch.Tensor, p: LIFParams = LIFParams()) -> torch.Tensor:
    """Multi-step LIF written as a plain autograd loop over ``x[t]`` (``x: [T, ...]``).

    Readable oracle for tests; the model uses :class:`LIFFunction`.
    """
    v = torch.full_like(x[0], p.v_reset)
    out = []
    for t in range(x.shape[0]):
        h = _charge(x[t], v, p)
        if p.spike_max == 1:
            s = _SigmoidHeaviside.apply(h - p.v_th, p.alpha)
            sr = s.detach() if p.detach_reset else s
            if p.soft_reset:
                v = h - sr * p.v_th
            else:
                v = h * (1.0 - sr) + p.v_reset * sr
            out.append(s)
        else:
            s = _RoundClampSTE.apply(h, p.spike_max)
            sr = s.detach() if p.detach_reset else s
            v = h - sr
            out.append(s / p.spike_max)
    return torch.stack(out)


# =========================================================================== triton backend
_TRITON: dict = {}


def _triton_kernels():
    """Triton kernels (CUDA float32) from ``_lif_triton``, or None if triton is unavailable."""
    if "k" in _TRITON:
        return _TRITON["k"]
    try:
        import triton

        from . import _lif_triton
        _TRITON["k"] = (triton, _lif_triton.lif_fwd_kernel, _lif_triton.lif_bwd_kernel)
    except Exception as e:  # noqa: BLE001 - any failure means "use the torch backend"
        _TRITON["k"], _TRITON["error"] = None, f"{type(e).__name__}: {e}"
    return _TRITON["k"]


_TRITON_BLOCK = 512


def _triton_forward(x: torch.Tensor, p: LIFParams, store_h: bool):
    triton, fwd, _ = _triton_kernels()
    x = x.contiguous()
    T = x.shape[0]
    N = x.numel() // T
    s = torch.empty_like(x)
    h = torch.empty_like(x) if store_h else s  # dummy pointer when not stored
    grid = (triton.cdiv(N, _TRITON_BLOCK),)
    with torch.cuda.device(x.device):
        fwd[grid](x, h, s, T, N, float(p.tau), float(p.v_th), float(p.v_reset),
                  DECAY=bool(p.decay_input), SOFT=bool(p.soft_reset), VR0=p.v_reset == 0.0,
                  D=int(p.spike_max), STORE=store_h, BLOCK=_TRITON_BLOCK)
    return s, (h if store_h else None)


def _triton_backward(g: torch.Tensor, h: torch.Tensor, p: LIFParams) -> torch.Tensor:
    triton, _, bwd = _triton_kernels()
    g = g.contiguous()
    T = h.shape[0]
    N = h.numel() // T
    grid = (triton.cdiv(N, _TRITON_BLOCK),)
    with torch.cuda.device(h.device):
        bwd[grid](g, h, T, N, float(p.tau), float(p.v_th), float(p.v_reset), float(p.alpha),
                  DECAY=bool(p.decay_input), SOFT=bool(p.soft_reset),
                  DETACH=bool(p.detach_reset), D=int(p.spike_max), BLOCK=_TRITON_BLOCK)
    return h


# =========================================================================== backend choice
LIF_BACKENDS = ("auto", "native", "triton", "torch")
_BACKEND = {"name": os.environ.get("SVF_LIF_BACKEND", "auto").strip().lower() or "auto"}
if _BACKEND["name"] not in LIF_BACKENDS:
    warnings.warn(f"SVF_LIF_BACKEND={_BACKEND['name']!r} is not one of {LIF_BACKENDS}; "
                  "using 'auto'")
    _BACKEND["name"] = "auto"


def set_lif_backend(name: str) -> str:
    """Select the LIF implementation: ``"auto"`` (default), ``"native"``, ``"triton"`` or
    ``"torch"``. A backend that cannot handle a call (device, dtype, tensor threshold) falls
    back to ``"torch"``. Returns the previous setting (env: ``SVF_LIF_BACKEND``)."""
    name = str(name).strip().lower()
    if name not in LIF_BACKENDS:
        raise ValueError(f"LIF backend must be one of {LIF_BACKENDS}, got {name!r}")
    old, _BACKEND["name"] = _BACKEND["name"], name
    return old


def get_lif_backend() -> str:
    """The configured backend name (see :func:`set_lif_backend`)."""
    return _BACKEND["name"]


def available_lif_backends() -> dict[str, str]:
    """``{backend: "ok" | reason it is unavailable}`` on this machine (builds the native kernel)."""
    out = {"torch": "ok"}
    out["native"] = "ok" if _native_lib() is not None else _NATIVE.get("error", "unavailable")
    if not torch.cuda.is_available():
        out["triton"] = "no CUDA device"
    else:
        out["triton"] = ("ok" if _triton_kernels() is not None
                         else _TRITON.get("error", "unavailable"))
    return out


def _graph_capture() -> bool:
    """True while torch.jit tracing or torch.compile / torch.export capture a graph: the
    kernels are opaque calls there, so the traceable torch backend is used instead."""
    if torch.jit.is_tracing():
        return True
    is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    return bool(is_compiling is not None and is_compiling())


def lif_backend_for(x: torch.Tensor, p: LIFParams = LIFParams()) -> str:
    """The backend that :class:`LIFFunction` uses for this input and these parameters."""
    want = _BACKEND["name"]
    scalar_th = not isinstance(p.v_th, torch.Tensor)
    if x.dtype == torch.float32 and scalar_th and x.numel() > 0 and not _graph_capture():
        if x.device.type == "cpu" and want in ("auto", "native") and _native_lib() is not None:
            return "native"
        if x.device.type == "cuda" and want in ("auto", "triton") and _triton_kernels() is not None:
            return "triton"
    return "torch"


_FORWARD = {"native": _native_forward, "triton": _triton_forward, "torch": _torch_forward}
_BACKWARD = {"native": _native_backward, "triton": _triton_backward, "torch": _torch_backward}


class LIFFunction(torch.autograd.Function):
    """Fused multi-step LIF: forward loop without autograd, backward loop in reverse time.

    Saves only the pre-spike membrane ``h`` of every step (input dtype); spikes are recomputed
    from it, and backward writes the input gradient into that buffer (no extra allocation).
    Because of that in-place reuse, one graph can be back-propagated through an LIF once
    (``retain_graph=True`` followed by a second backward raises a clear error); a backward with
    ``create_graph=True`` keeps ``h`` intact. Gradients equal :func:`lif_reference` (tests
    check forward and backward for every backend).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: LIFParams) -> torch.Tensor:  # type: ignore[override]
        backend = lif_backend_for(x, p)
        s, h = _FORWARD[backend](x, p, True)
        ctx.save_for_backward(h)
        ctx.p, ctx.backend, ctx.consumed = p, backend, False
        return s

    @staticmethod
    def backward(ctx, grad_s: torch.Tensor):  # type: ignore[override]
        if ctx.consumed:
            raise RuntimeError(
                "LIF backward was called twice on the same graph: the fused LIF reuses its saved "
                "membrane buffer for the gradient. Recompute the forward pass, or use "
                "spikevideoformer.layers.neuron.lif_reference for retain_graph workflows.")
        (h,) = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: keep the saved tensor intact
            h = h.detach().clone()
        else:
            ctx.consumed = True
        if grad_s.dtype != h.dtype:
            grad_s = grad_s.to(h.dtype)
        return _BACKWARD[ctx.backend](grad_s, h, ctx.p), None


def lif_multistep(x: torch.Tensor, p: LIFParams = LIFParams()) -> torch.Tensor:
    """Functional multi-step LIF on ``x: [T, ...]`` → spikes of the same shape (docs/design.md §1)."""
    if x.dim() < 1 or x.shape[0] < 1:
        raise ValueError(f"LIF expects a tensor [T, ...] with T >= 1, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"LIF expects a floating-point tensor, got {x.dtype}")
    if torch.is_grad_enabled() and x.requires_grad:
        s = LIFFunction.apply(x, p)
        if _SPIKE_REG["depth"] and p.spike_max == 1:
            _register_spikes(s)
        return s
    # inference: no autograd node, no saved membrane
    return _FORWARD[lif_backend_for(x, p)](x, p, False)[0]


class LIF(nn.Module):
    """Multi-step LIF / Integer-LIF neuron applied to ``[T, ...]`` (time first), docs/design.md §1.

    ``LIF(tau=2.0, v_th=1.0, v_reset=0.0, soft_reset=False, detach_reset=True, alpha=4.0,
    spike_max=1)``. State is local to one forward call. ``v_th`` is a buffer-free float; the
    folding code may change it (it absorbs scale and BatchNorm at inference).
    """

    def __init__(
        self,
        tau: float = 2.0,
        v_th: float = 1.0,
        v_reset: float = 0.0,
        soft_reset: bool = False,
        detach_reset: bool = True,
        alpha: float = 4.0,
        spike_max: int = 1,
        decay_input: bool = True,
        temporal_state: bool = True,
    ) -> None:
        super().__init__()
        self.temporal_state = bool(temporal_state)
        self.params = LIFParams(
            tau=float(tau), v_th=float(v_th), v_reset=float(v_reset), decay_input=decay_input,
            soft_reset=soft_reset, detach_reset=detach_reset, alpha=float(alpha),
            spike_max=int(spike_max),
        )

    @property
    def spike_max(self) -> int:
        return self.params.spike_max

    @property
    def v_th(self) -> float:
        return self.params.v_th

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.temporal_state:
            # ablation "no temporal state": membrane reset at every frame (docs/design.md §3.6)
            return lif_multistep(x.reshape(1, -1, *x.shape[2:]), self.params).reshape(x.shape)
        return lif_multistep(x, self.params)

    def extra_repr(self) -> str:
        p = self.params
        s = f"tau={p.tau}, v_th={p.v_th}, v_reset={p.v_reset}"
        if p.soft_reset:
            s += ", soft_reset=True"
        if p.spike_max > 1:
            s += f", spike_max={p.spike_max}"
        if not self.temporal_state:
            s += ", temporal_state=False"
        return s


NEURON_KINDS = ("lif", "relu")


@dataclass(frozen=True)
class NeuronSpec:
    """How a model builds its neurons: ``kind="lif"`` (spiking) or ``"relu"`` (ANN counterpart).

    ``spike_max > 1`` selects Integer-LIF; ``temporal_state=False`` resets the membrane at every
    frame (ablation). ``make(v_th=...)`` overrides the threshold (attention LIF of SDSA: 0.5).
    """

    kind: str = "lif"
    tau: float = 2.0
    v_th: float = 1.0
    v_reset: float = 0.0
    soft_reset: bool = False
    detach_reset: bool = True
    alpha: float = 4.0
    spike_max: int = 1
    temporal_state: bool = True

    def __post_init__(self) -> None:
        if self.kind not in NEURON_KINDS:
            raise ValueError(f"neuron kind must be one of {NEURON_KINDS}, got {self.kind!r}")
        LIFParams(tau=self.tau, v_th=self.v_th, spike_max=self.spike_max, alpha=self.alpha)

    @property
    def spiking(self) -> bool:
        return self.kind == "lif"

    def make(self, v_th: float | None = None) -> nn.Module:
        if self.kind == "relu":
            return nn.ReLU()
        return LIF(
            tau=self.tau, v_th=self.v_th if v_th is None else v_th, v_reset=self.v_reset,
            soft_reset=self.soft_reset, detach_reset=self.detach_reset, alpha=self.alpha,
            spike_max=self.spike_max, temporal_state=self.temporal_state,
        )
