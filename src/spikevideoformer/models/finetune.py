"""Initialising a model from pretrained weights of a different shape (fine-tuning).

:func:`load_matching_weights` copies every tensor whose shape fits, adapts a stem convolution
that differs only in its input channels (:func:`adapt_stem_weight`: an RGB checkpoint into a
2-channel event model), drops mis-shaped tensors such as another task's classification head
and reports all of it in a :class:`LoadReport`.  Reading files: :mod:`.weights`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Mapping, Tuple

import numpy as np
import torch

from .weights import CheckpointError, abbreviate

__all__ = ["adapt_stem_weight", "LoadReport", "load_matching_weights"]


def adapt_stem_weight(weight: Any, in_chans: int):
    """Adapt a pretrained stem convolution weight to a different number of input channels.

    Rule: average the ``C_in`` (normally RGB, 3) input filters, repeat the average over
    ``in_chans`` channels, and scale by ``C_in / in_chans``::

        W_new[:, j] = (C_in / in_chans) * mean_c W[:, c]      for j = 0 .. in_chans - 1

    For a spatially uniform input of the same value ``v`` on every channel, the old response
    is ``sum_c W[:, c] * v`` and the new one is ``in_chans * (C_in / in_chans) * mean_c W[:, c]
    * v`` -- identical, so activation statistics (and the spiking thresholds tuned on them)
    are preserved on average. Use ``in_chans=2`` for ON/OFF event frames.

    Args:
        weight: ``[C_out, C_in, k, k]`` torch tensor or numpy array.
        in_chans: new number of input channels (>= 1).

    Returns:
        A new tensor/array of the same type, dtype and device, shape ``[C_out, in_chans, k, k]``.
    """
    in_chans = int(in_chans)
    if in_chans < 1:
        raise ValueError(f"in_chans must be >= 1, got {in_chans}")
    if weight.ndim != 4:
        raise ValueError(f"stem weight must be [C_out, C_in, k, k], got shape {tuple(weight.shape)}")
    c_in = weight.shape[1]
    scale = c_in / in_chans
    if isinstance(weight, np.ndarray):
        mean = weight.mean(axis=1, keepdims=True)
        return (np.repeat(mean, in_chans, axis=1) * scale).astype(weight.dtype)
    with torch.no_grad():
        mean = weight.detach().mean(dim=1, keepdim=True)
        return (mean.repeat(1, in_chans, 1, 1) * scale).to(weight.dtype).clone()


@dataclass
class LoadReport:
    """What :func:`load_matching_weights` did; ``str(report)`` is a human-readable summary."""

    source: str
    loaded: List[str] = field(default_factory=list)
    dropped: List[Tuple[str, Tuple[int, ...], Tuple[int, ...]]] = field(default_factory=list)
    adapted: List[Tuple[str, Tuple[int, ...], Tuple[int, ...]]] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)

    def __str__(self) -> str:
        total = len(self.loaded) + len(self.missing) + len(self.dropped) + len(self.adapted)
        lines = [f"loaded {len(self.loaded)}/{total} tensors from {self.source}"]
        if self.adapted:
            lines.append("adapted input channels (filters averaged): " + abbreviate(
                [f"{k} {list(f)} -> {list(m)}" for k, f, m in self.adapted]))
        if self.dropped:
            lines.append("dropped (shape mismatch): " + abbreviate(
                [f"{k} {list(f)} in file vs {list(m)} in model" for k, f, m in self.dropped]))
        if self.missing:
            lines.append(f"missing (left at initialisation): {abbreviate(self.missing)}")
        if self.unexpected:
            lines.append(f"unexpected (ignored): {abbreviate(self.unexpected)}")
        return "\n".join(lines)


def _input_channels_differ(src: torch.Tensor, dst: torch.Tensor) -> bool:
    """A conv weight ``[Cout, Cin, k, k]`` that differs only in its input channels."""
    return (src.dim() == 4 and dst.dim() == 4 and src.shape[1] != dst.shape[1]
            and src.shape[0] == dst.shape[0] and src.shape[2:] == dst.shape[2:])


def load_matching_weights(model: torch.nn.Module, weights: Mapping[str, torch.Tensor], source: str,
                          drop_mismatched_head: bool = True) -> LoadReport:
    """Load the tensors of ``weights`` that fit ``model`` (a bare module, not DDP-wrapped).

    Mis-shaped tensors are dropped and reported when ``drop_mismatched_head`` is true,
    otherwise :class:`CheckpointError` (naming ``source``) is raised.  A conv weight that differs
    only in its input channels is adapted with :func:`adapt_stem_weight`.  Missing keys keep
    their initialisation; unexpected keys are ignored; both are reported.
    """
    own = model.state_dict()
    report = LoadReport(source=source)
    keep = {}
    for key, mine in own.items():  # report in the model's order
        if key not in weights:
            report.missing.append(key)
        elif _input_channels_differ(weights[key], mine):
            # e.g. an RGB stem loaded into a 2-channel event model: documented averaging rule
            keep[key] = adapt_stem_weight(weights[key], mine.shape[1]).to(mine.dtype)
            report.adapted.append((key, tuple(weights[key].shape), tuple(mine.shape)))
        elif weights[key].shape != mine.shape:
            report.dropped.append((key, tuple(weights[key].shape), tuple(mine.shape)))
        else:
            keep[key] = weights[key]
            report.loaded.append(key)
    report.unexpected = [k for k in weights if k not in own]
    if report.dropped and not drop_mismatched_head:
        raise CheckpointError(f"shape mismatch loading {source}: " + abbreviate(
            [f"{k} {list(f)} vs {list(m)}" for k, f, m in report.dropped]))
    model.load_state_dict(keep, strict=False)
    return report
