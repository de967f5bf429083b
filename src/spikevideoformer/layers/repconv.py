"""RepConv with the padded-BatchNorm trick (docs/design.md §2.4, Meta-SpikeFormer).

``RepConv(Cin, Cout)``: conv1×1 Cin→Cin → BN whose 1-pixel border is filled with the value
the BN gives to a zero input → depthwise 3×3 (no padding) → conv1×1 Cin→Cout → BN.
Filling the border with ``BN(0)`` makes the block equal to "BN then zero-padded 3×3" applied
to the pre-BN tensor, which is why it folds exactly into one 3×3 convolution at inference
(``RepConv.to_conv``, eq. (6.2); used by the blocks' ``fuse()`` and ``deploy.fold``). Module
names follow the official code (``body.0``, ``body.1.bn``, ``body.2.{0,1,2}``).

Derivation of the fold. With ``s`` the input, ``W1`` the first 1×1, ``(g1, b1)`` the padded BN
as a per-channel affine (``b1 = BN1(0)``, the value on the border), ``Wd`` the depth-wise 3×3
(no padding), ``W2`` the last 1×1 and ``(g2, b2)`` the last BN::

    pad_BN1(0)(g1·W1 s + b1) = g1 · zeropad(W1 s) + b1            (border: g1·0 + b1 ✓)
                             = g1 · W1 zeropad(s) + b1            (1×1, no bias, commutes with 0-pad)
    dw:   Wd ⋆ (...)         = (g1 Wd) ⋆ W1 zeropad(s) + b1 · ΣWd
    out = g2 · W2 (...) + b2
        = conv3×3_pad1(s; K) + c,  K[o,i,u,v] = g2[o] Σ_m W2[o,m] g1[m] Wd[m,u,v] W1[m,i]
                                   c[o]       = g2[o] Σ_m W2[o,m] b1[m] ΣWd[m] + b2[o]
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .fuse import bn_affine

__all__ = ["BNAndPad", "RepConv", "bn_zero_response", "fuse_repconv_bn"]


def bn_zero_response(bn: nn.BatchNorm2d) -> torch.Tensor:
    """Per-channel output of ``bn`` for a zero input, from running statistics: ``[C]``."""
    mean, var = bn.running_mean, bn.running_var
    if bn.affine:
        return bn.bias.detach() - mean * bn.weight.detach() / torch.sqrt(var + bn.eps)
    return -mean / torch.sqrt(var + bn.eps)


class BNAndPad(nn.Module):
    """BatchNorm2d followed by a ``pad``-pixel border filled with ``BN(0)`` per channel."""

    def __init__(self, channels: int, pad: int = 1) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(x)
        if self.pad == 0:
            return y
        fill = bn_zero_response(self.bn).to(y.dtype).view(1, -1, 1, 1)
        p = self.pad
        # zero-pad, then add the fill value on the border only
        y = F.pad(y, [p, p, p, p])
        border = torch.ones(1, 1, y.shape[-2], y.shape[-1], dtype=y.dtype, device=y.device)
        border[..., p:-p, p:-p] = 0
        return y + border * fill


class RepConv(nn.Module):
    """Re-parameterisable 1×1 → padded BN → dw3×3 → 1×1 → BN block on ``[N, Cin, H, W]``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, in_channels, 1, bias=False),
            BNAndPad(in_channels, pad=1),
            nn.Sequential(
                nn.Conv2d(in_channels, in_channels, 3, groups=in_channels, bias=False),
                nn.Conv2d(in_channels, out_channels, 1, bias=False),
                nn.BatchNorm2d(out_channels),
            ),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def to_conv(self, bn: nn.Module | None = None) -> nn.Conv2d:
        """One zero-padded 3×3 ``Conv2d`` (with bias) equal to ``bn(self(x))`` in eval mode
        (docs/design.md §6.2; derivation in the module docstring). ``self`` is not changed."""
        conv1, pad_bn, tail = self.body[0], self.body[1], self.body[2]
        dw, conv2, bn2 = tail[0], tail[1], tail[2]
        if not isinstance(pad_bn, BNAndPad):
            raise TypeError(f"unexpected RepConv layout: {type(pad_bn).__name__} instead of BNAndPad")
        if dw.stride != (1, 1) or dw.dilation != (1, 1) or dw.padding not in (0, (0, 0)):
            raise ValueError("RepConv.to_conv expects a stride-1, undilated, unpadded depth-wise conv")
        w1 = conv1.weight.detach().double()[:, :, 0, 0]          # [M, Cin]
        g1, b1 = bn_affine(pad_bn.bn)                            # [M]
        wd = dw.weight.detach().double()[:, 0]                   # [M, k, k]
        w2 = conv2.weight.detach().double()[:, :, 0, 0]          # [Cout, M]
        g2, b2 = bn_affine(bn2)                                  # [Cout]
        kernel = torch.einsum("om,muv,mi->oiuv", w2, g1.view(-1, 1, 1) * wd, w1) * g2.view(-1, 1, 1, 1)
        bias = g2 * (w2 @ (b1 * wd.sum(dim=(1, 2)))) + b2
        if bn is not None:
            g3, b3 = bn_affine(bn)
            kernel = kernel * g3.view(-1, 1, 1, 1)
            bias = g3 * bias + b3
        k = wd.shape[-1]
        ref = conv1.weight
        out = nn.Conv2d(w1.shape[1], w2.shape[0], k, padding=pad_bn.pad, bias=True,
                        device=ref.device, dtype=ref.dtype)
        with torch.no_grad():
            out.weight.copy_(kernel.to(ref.dtype))
            out.bias.copy_(bias.to(ref.dtype))
        return out


def fuse_repconv_bn(m: nn.Module) -> nn.Module:
    """``RepConv`` or ``Sequential(RepConv, BatchNorm2d)`` → one conv; anything else unchanged."""
    if isinstance(m, RepConv):
        return m.to_conv()
    if isinstance(m, nn.Sequential) and len(m) == 2 and isinstance(m[0], RepConv) \
            and isinstance(m[1], nn.BatchNorm2d):
        return m[0].to_conv(m[1])
    return m
