"""Training-time initialisation of a SpikeVideoFormer (docs/design.md §7.2).

``zero_init_residual(model)`` sets the scale (``weight``) of the last BatchNorm of every residual
branch to zero, so that each block starts as the identity and the network starts as shallow as
its stem and downsampling layers. It changes only the starting point of training: the forward
equations, the state_dict layout and the eval-mode parity with the official models are
untouched (official or trained weights overwrite the zeros when loaded).

Why (measured in docs/design.md §7.1): with PyTorch's default init, the gradient of the spiking
model grows by ~4× per transformer block from the loss back to the stem (Integer-LIF, D = 4),
so its global norm is ~1e5 at init and clipping at 1.0 leaves the deep layers' gradients below
Adam's epsilon. Identity blocks at init keep the gradient norm O(1).
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..layers.neuron import LIF

__all__ = ["zero_init_residual", "residual_norms", "set_training_recipe"]


def residual_norms(model: nn.Module) -> list[nn.Module]:
    """The norms that end a residual branch, as every block declares (``residual_norms()``)."""
    found: list[nn.Module] = []
    for mod in model.modules():
        declared = getattr(mod, "residual_norms", None)
        if callable(declared):
            found.extend(declared())
    return found


@torch.no_grad()
def zero_init_residual(model: nn.Module) -> int:
    """Zero the weight of each residual branch's last norm; returns how many were zeroed.

    A branch whose norm has been folded away (``deploy.fold``) has nothing to zero: folded
    models are for inference, so they are refused.
    """
    norms = residual_norms(model)
    bad = [type(n).__name__ for n in norms if not isinstance(n, nn.modules.batchnorm._BatchNorm)]
    if bad:
        raise ValueError(f"zero_init_residual needs the training form of the model (BatchNorm "
                         f"at the end of each residual branch), found {sorted(set(bad))}: "
                         "call it before deploy.fold")
    for norm in norms:
        norm.weight.zero_()
    return len(norms)


def set_training_recipe(model: nn.Module, surrogate_alpha: float | None = None,
                        bn_momentum: float | None = None) -> dict[str, int]:
    """Training-only knobs that leave the forward computation unchanged (docs/design.md §7.5):
    ``surrogate_alpha`` sets the width of every LIF's sigmoid surrogate gradient (used only in
    the backward; official 4.0), ``bn_momentum`` the running-statistics momentum of every
    BatchNorm (PyTorch's 0.1). ``None`` leaves a knob alone. Returns how many modules changed."""
    counts = {"lif": 0, "batchnorm": 0}
    for mod in model.modules():
        if surrogate_alpha is not None and isinstance(mod, LIF):
            mod.params = dataclasses.replace(mod.params, alpha=float(surrogate_alpha))
            counts["lif"] += 1
        if bn_momentum is not None and isinstance(mod, nn.modules.batchnorm._BatchNorm):
            mod.momentum = float(bn_momentum)
            counts["batchnorm"] += 1
    return counts
