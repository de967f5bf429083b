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

import torch
from torch import nn

__all__ = ["zero_init_residual", "residual_norms"]


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
