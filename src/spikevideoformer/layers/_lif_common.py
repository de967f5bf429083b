"""Shared definitions of the LIF backends: parameters, charge equation, surrogate (docs/design.md §1)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["LIFParams"]


@dataclass(frozen=True)
class LIFParams:
    """Hyper-parameters of a multi-step LIF neuron (defaults: official code, docs/design.md §1.3)."""

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
    """Membrane charge, docs/design.md eq. (1.1) (``decay_input=False``: eq. (1.5))."""
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
