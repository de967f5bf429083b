"""Spike-driven purity check (docs/design.md §2.1): every weight layer and attention product sees spikes.

A network is spike-driven when, apart from the stem (the backbone's ``"stem"`` stage,
``downsample1_1.encode_conv``: direct pixel encoding), every convolution, linear layer and attention matrix product takes spikes
as input, so it can run on additions only. Spikes are binary {0, 1}, or for Integer-LIF
(``spike_max = D``) the values ``k/D`` (normalised, training convention) or the integers
``0..D`` (deployed, ``1/D`` folded into the next layer), k = 0..D.

``check_spike_driven(model, video)`` runs one forward pass of the deployed network
(``deploy.fold(model)``: RepConv is one conv and BatchNorm is absorbed, so nothing real-valued
sits between a neuron and its convolution) with hooks and reports every violation by layer
name with a sample of the offending values.

One real-valued case is accepted and listed separately (``report.fused``): a layer whose
input is, directly, the output of another weight layer that was fed by spikes — e.g.
SepConv's ``dwconv → pwconv2`` (Meta-SpikeFormer's layout has no neuron between them). The
pair is a linear map of the spikes and can be fused into one spike-fed convolution, so the
network stays addition-only; as two layers, the second one multiplies (the energy profile
counts it as MACs).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from ._trace import AttentionOperands, Tracer, model_spike_max, stem_layers

__all__ = ["Violation", "PurityReport", "check_spike_driven", "is_spike_tensor"]


@dataclass
class Violation:
    """A layer input (or attention operand) that is not spikes."""

    layer: str
    operand: str             # "input" for conv/linear, "Q"/"K"/"V" for attention products
    shape: tuple
    fraction: float          # fraction of entries that are not allowed spike values
    sample: list             # a few offending values

    def __str__(self) -> str:
        vals = ", ".join(f"{v:.4g}" for v in self.sample)
        return (f"{self.layer} [{self.operand}] {tuple(self.shape)}: {self.fraction:.1%} of the "
                f"entries are not spikes (e.g. {vals})")


@dataclass
class PurityReport:
    """Outcome of :func:`check_spike_driven`."""

    spike_max: int
    checked: list = field(default_factory=list)       # "layer[operand]" strings, in call order
    exempt: list = field(default_factory=list)
    violations: list = field(default_factory=list)
    fused: list = field(default_factory=list)         # (layer, producer): linear map of spikes

    @property
    def ok(self) -> bool:
        return not self.violations

    def __str__(self) -> str:
        head = (f"spike-driven: {'yes' if self.ok else 'NO'} — {len(self.checked)} inputs checked "
                f"(spike values 0..{self.spike_max}), exempt: {', '.join(self.exempt) or 'none'}")
        notes = [f"  note: {layer} sees the output of {src} (fed by spikes, no neuron between): "
                 f"a linear map of spikes, fusable into one spike-fed layer"
                 for layer, src in self.fused]
        return "\n".join([head] + [f"  {v}" for v in self.violations] + notes)


def _bad_mask(x: torch.Tensor, d: int, tol: float = 1e-5) -> torch.Tensor:
    """True where ``x`` is neither ``k/d`` nor the integer ``k`` for some k in 0..d."""
    x = x.detach().double()
    scaled = x * d
    norm_ok = ((scaled - scaled.round()).abs() <= tol) & (scaled >= -tol) & (scaled <= d + tol)
    int_ok = ((x - x.round()).abs() <= tol) & (x >= -tol) & (x <= d + tol)
    return ~(norm_ok | int_ok)


def is_spike_tensor(x: torch.Tensor, spike_max: int = 1) -> bool:
    """True if every entry of ``x`` is a spike value (``k/D`` or integer k, 0 ≤ k ≤ D)."""
    return not bool(_bad_mask(x, spike_max).any())


def check_spike_driven(model: nn.Module, video: torch.Tensor,
                       exempt: Sequence[str] | None = None, fold: bool = True,
                       max_samples: int = 6) -> PurityReport:
    """Check that all conv/linear inputs and attention operands of ``model`` are spikes.

    Args:
        model: the network; it is not modified (hooks only) and runs once in eval mode
            without gradients.
        video: an input batch ``[B, T, C, H, W]``.
        exempt: qualified module names allowed to see real values; default the weight layers
            of each backbone's stem (``downsample1_1.encode_conv``).
        fold: check the deployed network ``deploy.fold(model)`` (default). ``False`` checks
            the training graph as is, where RepConv's inner layers see BatchNorm outputs.
        max_samples: offending values reported per violation.

    Returns a :class:`PurityReport` (``report.ok``, ``report.violations``, ``report.fused``).
    """
    from ..deploy.fold import dense_repconvs, fold as fold_model, is_folded

    # a FusedRepConv (1×1 → dw 3×3 → 1×1, the fast deployed form) is checked as the one 3×3
    # conv on spikes it equals: its inner layers are linear maps of a spike-fed output
    if fold and not is_folded(model):
        model = fold_model(model, repconv="dense")
    else:
        model = dense_repconvs(model)
    d = model_spike_max(model) or 1
    if exempt is None:
        exempt = stem_layers(model)
    exempt_set = set(exempt)
    report = PurityReport(spike_max=d, exempt=list(exempt))

    spike_fed: dict[int, tuple[torch.Tensor, str]] = {}  # outputs of spike-fed weight layers

    def check(layer: str, operand: str, x: torch.Tensor) -> bool:
        report.checked.append(f"{layer}[{operand}]")
        bad = _bad_mask(x, d)
        n_bad = int(bad.sum())
        if not n_bad:
            return True
        src = spike_fed.get(x.untyped_storage().data_ptr()) if x.numel() else None
        if src is not None and operand == "input":
            report.fused.append((layer, src[1]))
            return True
        vals = torch.unique(x.detach()[bad].double())
        pick = vals[torch.linspace(0, vals.numel() - 1, min(max_samples, vals.numel())).long()]
        report.violations.append(Violation(layer, operand, tuple(x.shape), n_bad / x.numel(),
                                           [float(v) for v in pick]))
        return False

    def on_layer(name, mod, x, out, unit):
        if name not in exempt_set and check(name, "input", x):
            spike_fed[out.untyped_storage().data_ptr()] = (out, name)  # keep it alive

    def on_attention(ops: AttentionOperands):
        for label, t in (("Q", ops.q), ("K", ops.k), ("V", ops.v)):  # branch path: ….attn(.temporal)
            check(ops.name, label, t)

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), Tracer(model, on_layer=on_layer, on_attention=on_attention):
            model(video)
    finally:
        model.train(was_training)
    return report
