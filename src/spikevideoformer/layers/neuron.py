"""Multi-step LIF and Integer-LIF neurons (SPEC §1).

One video frame is one time step. The membrane state lives only inside one call:
``lif_multistep(x)`` starts at ``v = v_reset`` for every clip, so nothing leaks between
calls or between samples of a batch.

Two implementations share one set of equations:

* ``lif_reference`` — a plain autograd loop, easy to read, used by tests as the oracle;
* ``LIFFunction`` — a custom ``torch.autograd.Function`` that runs the time loop without
  autograd bookkeeping and stores only the membrane ``h`` (one float tensor) for backward.
  Spikes are re-derived from ``h`` in backward, so no bool/uint8 copy is needed.

Equations (SPEC §1), ``decay_input=True``::

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
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["LIFParams", "lif_reference", "lif_multistep", "LIFFunction", "LIF", "NeuronSpec"]


@dataclass(frozen=True)
class LIFParams:
    """Hyper-parameters of a multi-step LIF neuron (defaults: SPEC §1 / official code)."""

    tau: float = 2.0
    v_th: float | torch.Tensor = 1.0  # a tensor broadcastable to x[t] gives per-channel thresholds
    v_reset: float = 0.0
    decay_input: bool = True
    soft_reset: bool = False
    detach_reset: bool = True
    alpha: float = 4.0
    spike_max: int = 1

    def __post_init__(self) -> None:
        if not self.tau > 1.0:
            raise ValueError(f"LIF tau must be > 1, got {self.tau}")
        if not bool(torch.all(torch.as_tensor(self.v_th) > 0)):
            raise ValueError(f"LIF v_th must be > 0, got {self.v_th}")
        if int(self.spike_max) != self.spike_max or self.spike_max < 1:
            raise ValueError(f"LIF spike_max must be an integer >= 1, got {self.spike_max}")
        if not self.alpha > 0:
            raise ValueError(f"LIF alpha must be > 0, got {self.alpha}")


def _charge(x: torch.Tensor, v: torch.Tensor, p: LIFParams) -> torch.Tensor:
    """Membrane charge, SPEC §1 first line (and its ``decay_input=False`` variant)."""
    if p.decay_input:
        if p.v_reset == 0.0:
            return v + (x - v) / p.tau
        return v + (x - (v - p.v_reset)) / p.tau
    if p.v_reset == 0.0:
        return v - v / p.tau + x
    return v - (v - p.v_reset) / p.tau + x


def _sg(u: torch.Tensor, alpha: float) -> torch.Tensor:
    """Derivative of the sigmoid surrogate ``sigmoid(alpha * u)`` with respect to ``u``."""
    s = torch.sigmoid(alpha * u)
    return alpha * s * (1.0 - s)


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


class LIFFunction(torch.autograd.Function):
    """Fused multi-step LIF: forward loop without autograd, backward loop in reverse time.

    Saves only the pre-spike membrane ``h`` of every step; spikes are recomputed from it.
    Gradients equal :func:`lif_reference` (tests check forward and backward).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: LIFParams) -> torch.Tensor:  # type: ignore[override]
        T = x.shape[0]
        h_seq = torch.empty_like(x)
        s_seq = torch.empty_like(x)
        v = torch.full_like(x[0], p.v_reset)
        d = p.spike_max
        for t in range(T):
            h = _charge(x[t], v, p)
            h_seq[t] = h
            if d == 1:
                s = (h >= p.v_th).to(x.dtype)
                if p.soft_reset:
                    v = h - s * p.v_th
                else:
                    v = h * (1.0 - s) + p.v_reset * s
                s_seq[t] = s
            else:
                s = torch.clamp(torch.round(h), 0, d)
                v = h - s
                s_seq[t] = s / d
        ctx.save_for_backward(h_seq)
        ctx.p = p
        return s_seq

    @staticmethod
    def backward(ctx, grad_s: torch.Tensor):  # type: ignore[override]
        (h_seq,) = ctx.saved_tensors
        p: LIFParams = ctx.p
        d = p.spike_max
        T = h_seq.shape[0]
        grad_x = torch.empty_like(h_seq)
        grad_v = torch.zeros_like(h_seq[0])
        # dh[t]/dv[t-1] and dh[t]/dx[t]
        dh_dv = 1.0 - 1.0 / p.tau
        dh_dx = (1.0 / p.tau) if p.decay_input else 1.0
        for t in range(T - 1, -1, -1):
            h = h_seq[t]
            if d == 1:
                sg = _sg(h - p.v_th, p.alpha)
                s = (h >= p.v_th).to(h.dtype)
                if p.soft_reset:
                    dv_dh = torch.ones_like(h) if p.detach_reset else 1.0 - p.v_th * sg
                else:
                    dv_dh = 1.0 - s
                    if not p.detach_reset:
                        dv_dh = dv_dh + (p.v_reset - h) * sg
                grad_h = grad_s[t] * sg + grad_v * dv_dh
            else:
                ste = ((h > 0) & (h < d)).to(h.dtype)
                dv_dh = torch.ones_like(h) if p.detach_reset else 1.0 - ste
                grad_h = grad_s[t] * ste / d + grad_v * dv_dh
            grad_x[t] = grad_h * dh_dx
            grad_v = grad_h * dh_dv
        return grad_x, None


def lif_multistep(x: torch.Tensor, p: LIFParams = LIFParams()) -> torch.Tensor:
    """Functional multi-step LIF on ``x: [T, ...]`` → spikes of the same shape (SPEC §1)."""
    if x.dim() < 1 or x.shape[0] < 1:
        raise ValueError(f"LIF expects a tensor [T, ...] with T >= 1, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"LIF expects a floating-point tensor, got {x.dtype}")
    return LIFFunction.apply(x, p)


class LIF(nn.Module):
    """Multi-step LIF / Integer-LIF neuron applied to ``[T, ...]`` (time first), SPEC §1.

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
            # ablation "no temporal state": membrane reset at every frame (SPEC §3)
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
