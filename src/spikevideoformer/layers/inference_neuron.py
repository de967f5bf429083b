"""The deployed neuron: LIF / Integer-LIF after folding, exportable (docs/design.md §1, §6.3-§6.5).

:func:`lif_inference` is the forward of ``neuron.lif_reference`` without autograd — the same
:func:`~.neuron.charge`, :func:`~.neuron.fire` and :func:`~.neuron.reset` — plus the two
things folding needs: a per-channel threshold and, for Integer-LIF, a per-channel spike unit.
:class:`InferenceLIF` wraps it; ``deploy.fold`` builds them.
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from . import lif_backends
from .neuron import LIF, NeuronParams, charge, fire, lif_multistep, reset

__all__ = ["lif_inference", "InferenceLIF"]


def lif_inference(x: torch.Tensor, p: NeuronParams, v_th: float | torch.Tensor | None = None,
                  unit: torch.Tensor | None = None, normalise: bool = True) -> torch.Tensor:
    """Multi-step LIF forward on ``x: [T, ...]`` as a plain loop (no autograd Function), so
    ``torch.export`` can trace it; an unchanged neuron gives spikes bit-identical to ``LIF``.

    ``v_th`` overrides ``p.v_th`` (a tensor broadcastable to ``x[t]``: per-channel
    thresholds). For Integer-LIF, ``unit`` (per channel) is the membrane value of one spike:
    ``s = clamp(round(h / unit), 0, D)``, reset ``v = h - s · unit`` (D thresholds at
    ``(j - 1/2) · unit``). ``normalise`` returns ``s / D`` (training convention) or the integer
    count ``s``. Binary spikes are 0/1 either way.
    """
    th = p.v_th if v_th is None else v_th
    d = p.spike_max
    out = []
    for t in range(x.shape[0]):
        if t == 0 or not p.temporal_state:
            v = torch.full_like(x[0], p.v_reset)
        h = charge(x[t], v, p)
        if d == 1 or unit is None:
            s = fire(h, p, th)
            v = reset(h, s, p, th)
        else:  # one spike is worth `unit` membrane units (docs/design.md §6.3)
            s = fire(h / unit, p)
            v = h - s * unit
        out.append(s / d if d > 1 and normalise else s)
    return torch.stack(out)


class InferenceLIF(nn.Module):
    """Deployed LIF / Integer-LIF on ``[T, B, C, ...]`` (docs/design.md §1, §6.3), exportable.

    Input map (per channel ``c``, buffers shaped ``[C, 1, 1]``): ``x' = sign[c]·x + bias[c]``
    with ``sign ∈ {+1, -1, 0}`` — a sign flip is an addition turned into a subtraction, so the
    neuron stays addition-only. Then the LIF of ``params`` runs with the (per-channel)
    threshold ``v_th`` and, for Integer-LIF, the per-channel spike ``unit``. ``normalise``
    False makes an Integer-LIF emit integer counts (its ``1/D`` was moved into the next layer).
    ``temporal_state`` (if given) overrides ``params.temporal_state``. Built by
    ``deploy.fold``; ``InferenceLIF.from_lif(lif)`` converts a ``LIF`` unchanged.
    """

    def __init__(self, params: NeuronParams, temporal_state: bool | None = None,
                 v_th: torch.Tensor | float | None = None, sign: torch.Tensor | None = None,
                 bias: torch.Tensor | None = None, unit: torch.Tensor | None = None,
                 normalise: bool = True) -> None:
        super().__init__()
        if temporal_state is not None and bool(temporal_state) != params.temporal_state:
            params = dataclasses.replace(params, temporal_state=bool(temporal_state))
        if v_th is not None and not isinstance(v_th, torch.Tensor):
            params = dataclasses.replace(params, v_th=float(v_th))
        self.params = params
        self.normalise = bool(normalise)
        if isinstance(v_th, torch.Tensor):
            self.register_buffer("v_th", v_th.detach().clone())
        else:
            self.v_th = params.v_th
        self.register_buffer("sign", None if sign is None else sign.detach().clone())
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self.register_buffer("unit", None if unit is None else unit.detach().clone())

    @classmethod
    def from_lif(cls, lif: LIF) -> InferenceLIF:
        """Same neuron, inference implementation (bit-identical spikes)."""
        return cls(lif.params)

    @property
    def temporal_state(self) -> bool:
        return self.params.temporal_state

    @property
    def spike_max(self) -> int:
        return self.params.spike_max

    @property
    def out_scale(self) -> float:
        """Value of one spike in the output: ``1/D`` (normalised) or 1 (integer counts)."""
        return 1.0 / self.params.spike_max if self.normalise else 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.sign is not None:
            x = x * self.sign
        if self.bias is not None:
            x = x + self.bias
        fast = self.unit is None and (self.normalise or self.spike_max == 1)
        if fast and not lif_backends.graph_capture():
            # the library's functional core (fast kernels); same arithmetic as lif_inference
            p = self.params
            if isinstance(self.v_th, torch.Tensor):
                p = dataclasses.replace(p, v_th=self.v_th)
            return lif_multistep(x, p)
        # exportable plain loop (per-channel spike unit, integer output, graph capture)
        return lif_inference(x, self.params, self.v_th, self.unit, self.normalise)

    def extra_repr(self) -> str:
        p = self.params
        th = "per-channel" if isinstance(self.v_th, torch.Tensor) else f"{self.v_th}"
        s = f"tau={p.tau}, v_th={th}, v_reset={p.v_reset}"
        if p.spike_max > 1:
            s += f", spike_max={p.spike_max}" + ("" if self.normalise else ", integer output")
        if self.sign is not None or self.bias is not None:
            s += ", folded input map"
        return s
