"""Folding helpers the blocks use in their ``fuse()`` (docs/design.md §6.1).

A block's ``fuse()`` re-parameterises it in place for inference: every BatchNorm that follows a
convolution moves into it, every RepConv becomes one 3×3 convolution (``RepConv.to_conv``).
``deploy.fold`` walks a model and calls ``fuse()`` wherever a module has one. Folded weights
are computed in float64 and cast back to the layer's dtype.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["bn_affine", "fuse_conv_bn"]

_BN = nn.modules.batchnorm._BatchNorm


def bn_affine(bn: _BN) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as ``y = scale · x + shift`` (float64, running statistics; eq. (6.1))."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(f"cannot fold {bn}: it has no running statistics (track_running_stats=False)")
    mean = bn.running_mean.detach().double()
    var = bn.running_var.detach().double()
    scale = 1.0 / torch.sqrt(var + bn.eps)
    shift = -mean * scale
    if bn.affine:
        w, b = bn.weight.detach().double(), bn.bias.detach().double()
        scale, shift = scale * w, shift * w + b
    return scale, shift


def fuse_conv_bn(conv: nn.Conv1d | nn.Conv2d | nn.Linear, bn: nn.Module | None) -> nn.Module:
    """One conv/linear equal to ``bn(conv(x))`` in eval mode (a new module, with bias).

    ``bn`` None or ``nn.Identity`` (already folded) returns ``conv`` itself.
    """
    if bn is None or isinstance(bn, nn.Identity):
        return conv
    scale, shift = bn_affine(bn)
    w = conv.weight.detach().double()
    b = conv.bias.detach().double() if conv.bias is not None else torch.zeros_like(scale)
    new = copy.deepcopy(conv)
    if new.bias is None:
        new.bias = nn.Parameter(torch.zeros(w.shape[0], dtype=conv.weight.dtype,
                                            device=conv.weight.device))
    shape = (-1,) + (1,) * (w.dim() - 1)
    with torch.no_grad():
        new.weight.copy_((w * scale.view(shape)).to(conv.weight.dtype))
        new.bias.copy_((b * scale + shift).to(conv.weight.dtype))
    return new
