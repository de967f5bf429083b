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

__all__ = ["BNAndPad", "FusedRepConv", "RepConv", "REPCONV_FOLDS", "bn_zero_response",
           "entry_layer", "fuse_repconv_bn"]

REPCONV_FOLDS = ("auto", "dense", "factorised")


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

    def to_fused(self, bn: nn.Module | None = None) -> FusedRepConv:
        """The factorised inference form (:class:`FusedRepConv`) of ``bn(self(x))`` in eval
        mode: every BN absorbed, the same three convolutions. ``self`` is not changed.

        The padded BN is ``g1 · zeropad(W1 s) + b1`` (module docstring), so ``g1`` goes into
        the first 1×1, the depth-wise conv zero-pads, and the constant ``b1`` it would add,
        ``b1 · ΣWd`` per channel, goes through the last 1×1 into its bias:
        ``c = g2 · W2 (b1 · ΣWd) + b2`` (the bias of the dense fold)."""
        conv1, pad_bn, tail = self.body[0], self.body[1], self.body[2]
        dw, conv2, bn2 = tail[0], tail[1], tail[2]
        if not isinstance(pad_bn, BNAndPad):
            raise TypeError(f"unexpected RepConv layout: {type(pad_bn).__name__} instead of BNAndPad")
        if dw.stride != (1, 1) or dw.dilation != (1, 1) or dw.padding not in (0, (0, 0)):
            raise ValueError("RepConv.to_fused expects a stride-1, undilated, unpadded depth-wise conv")
        g1, b1 = bn_affine(pad_bn.bn)
        g2, b2 = bn_affine(bn2)
        if bn is not None:
            g3, b3 = bn_affine(bn)
            g2, b2 = g2 * g3, b2 * g3 + b3
        wd = dw.weight.detach().double()
        w2 = conv2.weight.detach().double()[:, :, 0, 0]
        ref = conv1.weight
        out = FusedRepConv(conv1.in_channels, conv1.out_channels, conv2.out_channels,
                           dw.kernel_size[0], pad_bn.pad).to(device=ref.device, dtype=ref.dtype)
        with torch.no_grad():
            out.conv1.weight.copy_((conv1.weight.detach().double() * g1.view(-1, 1, 1, 1)).to(ref.dtype))
            out.dw.weight.copy_(dw.weight.detach())
            out.conv2.weight.copy_((w2 * g2.view(-1, 1)).view_as(conv2.weight).to(ref.dtype))
            out.conv2.bias.copy_((g2 * (w2 @ (b1 * wd.sum(dim=(1, 2, 3)))) + b2).to(ref.dtype))
        return out

    def dense_cheaper(self) -> bool:
        """True when the one dense k×k conv has fewer MACs per output position than the
        factorised form (``k²·Cin·Cout`` vs ``Cin·M + k²·M + M·Cout``)."""
        conv1, dw, conv2 = self.body[0], self.body[2][0], self.body[2][1]
        k2 = dw.kernel_size[0] * dw.kernel_size[1]
        cin, m, cout = conv1.in_channels, conv1.out_channels, conv2.out_channels
        return k2 * cin * cout < cin * m + k2 * m + m * cout


class FusedRepConv(nn.Module):
    """Factorised inference form of ``BN(RepConv(x))`` (docs/deploy.md): conv 1×1 Cin→M (no
    bias, the padded BN's scale folded in) → depth-wise k×k, zero ``padding=pad`` (no bias) →
    conv 1×1 M→Cout whose bias carries every constant (the padded BN's shift through the
    depth-wise conv, the last BNs). Built by ``RepConv.to_fused``.

    Fewer MACs than the dense fold (``RepConv.to_conv``) whenever ``Cin·M + k²·M + M·Cout <
    k²·Cin·Cout`` (always for C→C with C ≥ 2). ``to_conv()`` gives the equal dense k×k conv,
    the form the energy model counts (one conv on spikes).
    """

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, kernel: int = 3,
                 pad: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, mid_channels, 1, bias=False)
        self.dw = nn.Conv2d(mid_channels, mid_channels, kernel, padding=pad, groups=mid_channels,
                            bias=False)
        self.conv2 = nn.Conv2d(mid_channels, out_channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.dw(self.conv1(x)))

    def to_conv(self) -> nn.Conv2d:
        """The equal dense k×k conv (zero padding, bias), computed in float64."""
        w1 = self.conv1.weight.detach().double()[:, :, 0, 0]
        wd = self.dw.weight.detach().double()[:, 0]
        w2 = self.conv2.weight.detach().double()[:, :, 0, 0]
        ref = self.conv1.weight
        out = nn.Conv2d(w1.shape[1], w2.shape[0], wd.shape[-1], padding=self.dw.padding,
                        bias=True, device=ref.device, dtype=ref.dtype)
        with torch.no_grad():
            out.weight.copy_(torch.einsum("om,muv,mi->oiuv", w2, wd, w1).to(ref.dtype))
            out.bias.copy_(self.conv2.bias.detach())
        return out


def entry_layer(m: nn.Module) -> nn.Module:
    """The layer that receives ``m``'s input: ``conv1`` of a :class:`FusedRepConv`, else ``m``
    (where an Integer-LIF's ``1/D`` goes, docs/design.md §6.4)."""
    return m.conv1 if isinstance(m, FusedRepConv) else m


def fuse_repconv_bn(m: nn.Module, mode: str = "auto") -> nn.Module:
    """``RepConv`` or ``Sequential(RepConv, BatchNorm2d)`` → its inference form; anything else
    unchanged. ``mode``: ``"dense"`` one k×k conv (``RepConv.to_conv``), ``"factorised"`` a
    :class:`FusedRepConv`, ``"auto"`` whichever has fewer MACs (factorised for C→C)."""
    if mode not in REPCONV_FOLDS:
        raise ValueError(f"mode must be one of {REPCONV_FOLDS}, got {mode!r}")
    if isinstance(m, RepConv):
        rep, bn = m, None
    elif isinstance(m, nn.Sequential) and len(m) == 2 and isinstance(m[0], RepConv) \
            and isinstance(m[1], nn.BatchNorm2d):
        rep, bn = m[0], m[1]
    else:
        return m
    if mode == "dense" or (mode == "auto" and rep.dense_cheaper()):
        return rep.to_conv(bn)
    return rep.to_fused(bn)
