"""RepConv with the padded-BatchNorm trick (docs/design.md §2.4, Meta-SpikeFormer).

``RepConv(Cin, Cout)``: conv1×1 Cin→Cin → BN whose 1-pixel border is filled with the value
the BN gives to a zero input → depthwise 3×3 (no padding) → conv1×1 Cin→Cout → BN.
Filling the border with ``BN(0)`` makes the block equal to "BN then zero-padded 3×3" applied
to the pre-BN tensor, which is why it folds exactly into one 3×3 convolution at inference
(see ``spikevideoformer.deploy.fold``). Module names follow the official code
(``body.0``, ``body.1.bn``, ``body.2.{0,1,2}``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BNAndPad", "RepConv", "bn_zero_response"]


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
