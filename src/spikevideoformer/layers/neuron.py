"""Spiking neurons: multi-step LIF and Integer-LIF, one video frame per time step (docs/design.md §1).

Read top to bottom:

1. :class:`NeuronParams` — the one description of a neuron, used by the functions here, the
   :class:`LIF` module and the model builders (``LIFParams`` and ``NeuronSpec`` are other
   names of it).
2. The equations as small pure functions: :func:`charge` (eqs. (1.1)/(1.5)), :func:`fire`
   ((1.2)/(1.7)) and :func:`reset` ((1.3)/(1.4)/(1.7)).
3. The surrogate gradient (eqs. (1.6), (1.8)).
4. :func:`lif_reference` — the multi-step loop written out with autograd; the model runs it
   with ``set_lif_backend("reference")``.
5. :func:`lif_multistep` — the same neuron through a fast backend (``layers/lif_backends.py``:
   torch with preallocated buffers, native C, Triton), wrapped in :class:`LIFFunction`, which
   saves only the membrane ``h`` and writes the input gradient into it.
6. :class:`LIF` — the ``nn.Module``.

The membrane state lives inside one call: every clip starts at ``v = v_reset``, so nothing
leaks between calls or between the samples of a batch. All backends give spikes bit-identical
to :func:`lif_reference` and gradients equal to it up to float rounding (tests/test_neuron.py).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from . import lif_backends as backends
from .lif_backends import (  # re-exported: the backend switch is part of the neuron's API
    LIF_BACKENDS, available_lif_backends, get_lif_backend, lif_backend_for, set_lif_backend,
)
from .spike_storage import _SPIKE_REG, _register_spikes, compact_spike_storage

__all__ = [
    "NeuronParams", "LIFParams", "NeuronSpec", "NEURON_KINDS", "charge", "fire", "reset",
    "sigmoid_surrogate", "spike_gradient", "lif_reference", "lif_multistep", "LIFFunction",
    "LIF", "LIF_BACKENDS", "set_lif_backend", "get_lif_backend", "available_lif_backends",
    "lif_backend_for", "compact_spike_storage",
]

NEURON_KINDS = ("lif", "relu")


# =========================================================================== 1. parameters
@dataclass(frozen=True, kw_only=True)
class NeuronParams:
    """One neuron's hyper-parameters (defaults: official code, docs/design.md §1.3).

    ``kind="relu"`` builds the ANN counterpart's ``nn.ReLU``; ``spike_max = D > 1`` is
    Integer-LIF (§1.4); ``temporal_state=False`` restarts the membrane at every frame
    (ablation). ``v_th`` may be a tensor broadcastable to one frame (per-channel thresholds).
    """

    kind: str = "lif"
    tau: float = 2.0
    v_th: float | torch.Tensor = 1.0
    v_reset: float = 0.0
    decay_input: bool = True
    soft_reset: bool = False
    detach_reset: bool = True
    alpha: float = 4.0
    spike_max: int = 1
    temporal_state: bool = True

    def __post_init__(self) -> None:
        if self.kind not in NEURON_KINDS:
            raise ValueError(f"neuron kind must be one of {NEURON_KINDS}, got {self.kind!r}")
        if not self.tau > 1.0:
            raise ValueError(f"LIF tau must be > 1, got {self.tau}")
        if not bool(torch.all(torch.as_tensor(self.v_th) > 0)):
            raise ValueError(f"LIF v_th must be > 0, got {self.v_th}")
        if int(self.spike_max) != self.spike_max or self.spike_max < 1:
            raise ValueError(f"LIF spike_max must be an integer >= 1, got {self.spike_max}")
        if not self.alpha > 0:
            raise ValueError(f"LIF alpha must be > 0, got {self.alpha}")
        plain = dict(tau=float(self.tau), v_reset=float(self.v_reset), alpha=float(self.alpha),
                     spike_max=int(self.spike_max), decay_input=bool(self.decay_input),
                     soft_reset=bool(self.soft_reset), detach_reset=bool(self.detach_reset),
                     temporal_state=bool(self.temporal_state))
        if not isinstance(self.v_th, torch.Tensor):
            plain["v_th"] = float(self.v_th)
        for name, value in plain.items():  # 1 -> 1.0 etc.: one canonical type per field
            object.__setattr__(self, name, value)

    @property
    def spiking(self) -> bool:
        return self.kind == "lif"

    def make(self, v_th: float | None = None) -> nn.Module:
        """A fresh neuron module (``v_th`` overrides the threshold: SDSA's attention LIF, 0.5)."""
        if self.kind == "relu":
            return nn.ReLU()
        return LIF(self if v_th is None else dataclasses.replace(self, v_th=v_th))

    @classmethod
    def build(cls, neuron: str | dict | NeuronParams = "lif", **overrides) -> NeuronParams:
        """From a kind (``"lif"``/``"relu"``), a dict of fields, or params; ``None`` overrides
        are ignored (config files and ``create_model`` use this)."""
        if isinstance(neuron, cls):
            kw = {f.name: getattr(neuron, f.name) for f in dataclasses.fields(cls)}
        elif isinstance(neuron, str):
            kw = {"kind": neuron}
        elif isinstance(neuron, dict):
            valid = {f.name for f in dataclasses.fields(cls)}
            bad = sorted(set(neuron) - valid)
            if bad:
                raise ValueError(f"unknown neuron option(s) {bad}; valid: {sorted(valid)}")
            kw = dict(neuron)
        else:
            raise TypeError(f"neuron must be a str, dict or NeuronParams, "
                            f"got {type(neuron).__name__}")
        kw.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kw)


LIFParams = NeuronParams  # the name used by the functional core and older code
NeuronSpec = NeuronParams  # the name used by the model builders and older code
DEFAULT = NeuronParams()


# =========================================================================== 2. the equations
def charge(x: torch.Tensor, v: torch.Tensor, p: NeuronParams,
           out: torch.Tensor | None = None) -> torch.Tensor:
    """Membrane before firing, ``h[t]`` from input ``x[t]`` and membrane ``v[t-1]``.

    ``decay_input``:  h = v + (x - (v - v_reset)) / tau    (docs/design.md eq. (1.1))
    otherwise:        h = v - (v - v_reset) / tau + x      (eq. (1.5))

    ``out`` receives ``h`` (the torch backend's preallocated buffer). Every backend computes
    these operations in this order, so all give the same spikes.
    """
    above_rest = v - p.v_reset if p.v_reset != 0.0 else v
    if out is None:
        if p.decay_input:
            return v + (x - above_rest) / p.tau
        return v - above_rest / p.tau + x
    # the same operations in the same order, written into ``out`` without temporaries
    if p.decay_input:
        torch.sub(x, above_rest, out=out)
        return out.div_(p.tau).add_(v)
    torch.div(above_rest, p.tau, out=out)
    return torch.sub(v, out, out=out).add_(x)


def fire(h: torch.Tensor, p: NeuronParams,
         v_th: float | torch.Tensor | None = None) -> torch.Tensor:
    """Spike values: ``Θ(h - v_th)`` (eq. (1.2), ties fire), or for Integer-LIF the count
    ``clamp(round(h), 0, D)`` (eq. (1.7), ties round to even). ``v_th`` overrides ``p.v_th``."""
    if p.spike_max == 1:
        return (h >= (p.v_th if v_th is None else v_th)).to(h.dtype)
    return torch.clamp(torch.round(h), 0, p.spike_max)


def reset(h: torch.Tensor, s: torch.Tensor, p: NeuronParams,
          v_th: float | torch.Tensor | None = None) -> torch.Tensor:
    """Membrane after firing ``s``: hard reset ``h (1 - s) + v_reset s`` (eq. (1.3)), soft reset
    ``h - v_th s`` (eq. (1.4)); Integer-LIF removes what it fired, ``h - s`` (eq. (1.7))."""
    if p.spike_max > 1:
        return h - s
    if p.soft_reset:
        return h - s * (p.v_th if v_th is None else v_th)
    return h * (1.0 - s) + p.v_reset * s


# =========================================================================== 3. surrogate gradient
def sigmoid_surrogate(u: torch.Tensor, alpha: float) -> torch.Tensor:
    """``d sigmoid(alpha u) / du = alpha σ (1 - σ)``: stands in for ``dΘ(u)/du`` (eq. (1.6))."""
    s = torch.sigmoid(alpha * u)
    return alpha * s * (1.0 - s)


def spike_gradient(h: torch.Tensor, p: NeuronParams) -> torch.Tensor:
    """Backward ``d fire / d h``: eq. (1.6) at ``u = h - v_th``, or for Integer-LIF the
    straight-through ``1[0 < h < D]`` of eq. (1.8) (its ``1/D`` comes with the ``s / D`` output)."""
    if p.spike_max == 1:
        return sigmoid_surrogate(h - p.v_th, p.alpha)
    return ((h > 0) & (h < p.spike_max)).to(h.dtype)


class _FireWithSurrogate(torch.autograd.Function):
    """:func:`fire` forward, :func:`spike_gradient` backward."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, p: NeuronParams) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(h)
        ctx.p = p
        return fire(h, p)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (h,) = ctx.saved_tensors
        return grad * spike_gradient(h, ctx.p), None


# =========================================================================== 4. the multi-step loop
def lif_reference(x: torch.Tensor, p: NeuronParams = DEFAULT) -> torch.Tensor:
    """Multi-step LIF on ``x: [T, ...]``, one frame per step, as a plain autograd loop.

    Integer-LIF outputs ``s / D`` so activations stay in [0, 1] (§1.4). With ``detach_reset``
    the reset sees the spike as a constant (§1.2).
    """
    out = []
    for t in range(x.shape[0]):
        if t == 0 or not p.temporal_state:
            v = torch.full_like(x[0], p.v_reset)  # v[-1] = v_reset; no temporal state: every frame
        h = charge(x[t], v, p)
        s = _FireWithSurrogate.apply(h, p)
        v = reset(h, s.detach() if p.detach_reset else s, p)
        out.append(s / p.spike_max if p.spike_max > 1 else s)
    return torch.stack(out)


# =========================================================================== 5. the fast path
class LIFFunction(torch.autograd.Function):
    """The multi-step LIF through a fast backend (``layers/lif_backends.py``).

    Forward runs the time loop without autograd and saves only the pre-spike membrane ``h``
    (input dtype); backward re-derives the spikes from it and writes the input gradient into
    that same buffer. Because of that reuse one graph can be back-propagated through an LIF
    once (a second backward raises); ``create_graph=True`` keeps ``h`` intact.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: NeuronParams,  # type: ignore[override]
                backend: str | None = None) -> torch.Tensor:
        backend = backend or backends.lif_backend_for(x, p)
        s, h = backends.forward(backend, x, p, store_h=True)
        ctx.save_for_backward(h)
        ctx.p, ctx.backend, ctx.consumed = p, backend, False
        return s

    @staticmethod
    def backward(ctx, grad_s: torch.Tensor):  # type: ignore[override]
        if ctx.consumed:
            raise RuntimeError(
                "LIF backward was called twice on the same graph: the fused LIF reuses its saved "
                "membrane buffer for the gradient. Recompute the forward pass, or use "
                "set_lif_backend('reference') for retain_graph workflows.")
        (h,) = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: keep the saved tensor intact
            h = h.detach().clone()
        else:
            ctx.consumed = True
        if grad_s.dtype != h.dtype:
            grad_s = grad_s.to(h.dtype)
        return backends.backward(ctx.backend, grad_s, h, ctx.p), None, None


def lif_multistep(x: torch.Tensor, p: NeuronParams = DEFAULT) -> torch.Tensor:
    """Functional multi-step LIF on ``x: [T, ...]`` → spikes of the same shape (docs/design.md §1)."""
    if x.dim() < 1 or x.shape[0] < 1:
        raise ValueError(f"LIF expects a tensor [T, ...] with T >= 1, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"LIF expects a floating-point tensor, got {x.dtype}")
    if not p.temporal_state:  # every frame is a clip of one step
        return _run_backend(x.reshape(1, -1, *x.shape[2:]), p).reshape(x.shape)
    return _run_backend(x, p)


def _run_backend(x: torch.Tensor, p: NeuronParams) -> torch.Tensor:
    backend = backends.lif_backend_for(x, p)
    training = torch.is_grad_enabled() and x.requires_grad
    if backend == "reference":
        s = lif_reference(x, p)
    elif training:
        s = LIFFunction.apply(x, p, backend)
    else:
        return backends.forward(backend, x, p, store_h=False)[0]  # inference: no saved membrane
    if training and _SPIKE_REG["depth"] and p.spike_max == 1:
        _register_spikes(s)  # other layers may save these spikes compactly
    return s


# =========================================================================== 6. the module
class LIF(nn.Module):
    """Multi-step LIF / Integer-LIF on ``[T, ...]`` (time first), docs/design.md §1.

    ``LIF(params)`` or ``LIF(**fields)`` (``LIF(spike_max=4)``), or both: fields override
    ``params``. State is local to one forward call; the module has no tensors.
    """

    def __init__(self, params: NeuronParams | None = None, **fields) -> None:
        super().__init__()
        if params is not None and not isinstance(params, NeuronParams):
            raise TypeError(f"LIF takes NeuronParams and keyword fields, "
                            f"got {type(params).__name__}")
        params = DEFAULT if params is None else params
        if fields:
            params = dataclasses.replace(params, **fields)
        if not params.spiking:
            raise ValueError(f"LIF needs kind='lif', got {params.kind!r}")
        self.params = params

    @property
    def spike_max(self) -> int:
        return self.params.spike_max

    @property
    def v_th(self) -> float | torch.Tensor:
        return self.params.v_th

    @property
    def temporal_state(self) -> bool:
        return self.params.temporal_state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lif_multistep(x, self.params)

    def extra_repr(self) -> str:
        p = self.params
        s = f"tau={p.tau}, v_th={p.v_th}, v_reset={p.v_reset}"
        if p.soft_reset:
            s += ", soft_reset=True"
        if p.spike_max > 1:
            s += f", spike_max={p.spike_max}"
        if not p.temporal_state:
            s += ", temporal_state=False"
        return s
