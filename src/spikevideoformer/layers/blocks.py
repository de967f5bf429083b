"""Backbone building blocks (docs/design.md §2) on ``[T, B, C, H, W]``.

Every spiking branch starts with its own neuron (membrane shortcut); only stateless layers
(conv, BN) fold ``T`` into the batch. Module names follow the official code so that official
state_dicts load with the identity mapping.
"""
from __future__ import annotations

import torch
from torch import nn

from .attention import (
    apply_scale, dot_linear, from_tokens, hamming_linear, resolve_scale, softmax_attention,
    to_tokens,
)
from .neuron import NeuronSpec
from .repconv import RepConv

__all__ = [
    "ATTENTIONS", "DESIGNS", "DownSampling", "SepConv", "ConvBlock", "MLP", "SpikeAttention",
    "TransformerBlock",
]

ATTENTIONS = ("hamming", "dot", "softmax")
DESIGNS = ("joint", "spatial", "factorized", "hierarchical")


def _per_frame(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a stateless ``module`` to ``[T, B, ...]`` with T folded into the batch."""
    T, B = x.shape[:2]
    y = module(x.flatten(0, 1))
    return y.reshape(T, B, *y.shape[1:])


class DownSampling(nn.Module):
    """[LIF →] conv k×k (+bias) → BN. The stem (``first=True``) has no neuron (docs/design.md §2.2)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, padding: int,
                 neuron: NeuronSpec, first: bool = False) -> None:
        super().__init__()
        self.encode_conv = nn.Conv2d(cin, cout, kernel, stride, padding)
        self.encode_bn = nn.BatchNorm2d(cout)
        if not first:
            self.encode_lif = neuron.make()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "encode_lif"):
            x = self.encode_lif(x)
        return _per_frame(lambda z: self.encode_bn(self.encode_conv(z)), x)


class SepConv(nn.Module):
    """LIF → 1×1 C→2C → BN → LIF → dw 7×7 → 1×1 2C→C → BN (no biases)."""

    def __init__(self, dim: int, neuron: NeuronSpec, expansion: int = 2, kernel: int = 7) -> None:
        super().__init__()
        med = expansion * dim
        self.lif1 = neuron.make()
        self.pwconv1 = nn.Conv2d(dim, med, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(med)
        self.lif2 = neuron.make()
        self.dwconv = nn.Conv2d(med, med, kernel, padding=kernel // 2, groups=med, bias=False)
        self.pwconv2 = nn.Conv2d(med, dim, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _per_frame(lambda z: self.bn1(self.pwconv1(z)), self.lif1(x))
        return _per_frame(lambda z: self.bn2(self.pwconv2(self.dwconv(z))), self.lif2(x))


class ConvBlock(nn.Module):
    """CNN block: ``x + SepConv(x)``, then ``x + ChannelConv(x)`` (docs/design.md §2.3)."""

    def __init__(self, dim: int, neuron: NeuronSpec, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.Conv = SepConv(dim, neuron)
        self.lif1 = neuron.make()
        self.conv1 = nn.Conv2d(dim, dim * mlp_ratio, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(dim * mlp_ratio)
        self.lif2 = neuron.make()
        self.conv2 = nn.Conv2d(dim * mlp_ratio, dim, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.Conv(x)
        y = _per_frame(lambda z: self.bn1(self.conv1(z)), self.lif1(x))
        y = _per_frame(lambda z: self.bn2(self.conv2(z)), self.lif2(y))
        return x + y


class MLP(nn.Module):
    """LIF → 1×1 C→4C (+bias) → BN → LIF → 1×1 4C→C (+bias) → BN, on flattened tokens."""

    def __init__(self, dim: int, neuron: NeuronSpec, mlp_ratio: int = 4) -> None:
        super().__init__()
        hidden = dim * mlp_ratio
        self.fc1_lif = neuron.make()
        self.fc1_conv = nn.Conv1d(dim, hidden, 1)
        self.fc1_bn = nn.BatchNorm1d(hidden)
        self.fc2_lif = neuron.make()
        self.fc2_conv = nn.Conv1d(hidden, dim, 1)
        self.fc2_bn = nn.BatchNorm1d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, C, H, W = x.shape
        x = x.flatten(3)  # [T, B, C, N]
        x = _per_frame(lambda z: self.fc1_bn(self.fc1_conv(z)), self.fc1_lif(x))
        x = _per_frame(lambda z: self.fc2_bn(self.fc2_conv(z)), self.fc2_lif(x))
        return x.reshape(T, B, C, H, W)


class SpikeAttention(nn.Module):
    """Spike-driven self-attention over a token grouping (docs/design.md §3.1).

    ``s = LIF(x)``; ``q, k, v = LIF(BN(RepConv(s)))``; core (``hamming``: SDHA with scale and
    ``attn_bn`` → ``attn_lif`` v_th 1.0; ``dot``: SDSA ×1/8 → ``attn_lif`` v_th 0.5;
    ``softmax``: real-valued ANN counterpart); output ``BN(RepConv(·))``.
    ``grouping="factorized"`` runs a spatial core then a temporal core (prefix ``t_``) before
    the projection.
    """

    def __init__(self, dim: int, neuron: NeuronSpec, heads: int = 8, attention: str = "hamming",
                 grouping: str = "joint", scale: str | float | None = None) -> None:
        super().__init__()
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {attention!r}")
        if dim % heads:
            raise ValueError(f"channels {dim} must be divisible by heads {heads}")
        self.dim, self.heads, self.attention = dim, heads, attention
        self.cores = ("spatial", "temporal") if grouping == "factorized" else (grouping,)
        if scale is None:
            scale = {"hamming": "1/(2C)", "dot": "1/8", "softmax": "1/sqrt(d)"}[attention]
        self.scale = resolve_scale(scale, dim, dim // heads)
        self.head_lif = neuron.make()
        for i, _ in enumerate(self.cores):
            p = "t_" if i else ""
            for n in ("q", "k", "v"):
                setattr(self, f"{p}{n}_conv", nn.Sequential(RepConv(dim, dim), nn.BatchNorm2d(dim)))
                if attention != "softmax":
                    setattr(self, f"{p}{n}_lif", neuron.make())
            if attention == "hamming":
                setattr(self, f"{p}attn_bn", nn.BatchNorm2d(dim))
            if attention != "softmax":
                setattr(self, f"{p}attn_lif", neuron.make(v_th=1.0 if attention == "hamming" else 0.5))
        self.proj_conv = nn.Sequential(RepConv(dim, dim), nn.BatchNorm2d(dim))

    def _qkv(self, s: torch.Tensor, prefix: str) -> list[torch.Tensor]:
        out = []
        for n in ("q", "k", "v"):
            y = _per_frame(getattr(self, f"{prefix}{n}_conv"), s)
            if self.attention != "softmax":
                y = getattr(self, f"{prefix}{n}_lif")(y)
            out.append(y)
        return out

    def core(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grouping: str) -> torch.Tensor:
        """Attention core on ``[T, B, C, H, W]`` q/k/v; returns the pre-BN/LIF ``[T, B, C, H, W]``."""
        shape = q.shape
        qt, kt, vt = (to_tokens(z, self.heads, grouping) for z in (q, k, v))
        if self.attention == "hamming":
            y = apply_scale(hamming_linear(qt, kt, vt), self.scale)
        elif self.attention == "dot":
            y = apply_scale(dot_linear(qt, kt, vt), self.scale)
        else:
            y = softmax_attention(qt, kt, vt)
        return from_tokens(y, shape, grouping)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.head_lif(x)
        for i, grouping in enumerate(self.cores):
            p = "t_" if i else ""
            q, k, v = self._qkv(s, p)
            s = self.core(q, k, v, grouping)
            if self.attention == "hamming":
                s = _per_frame(getattr(self, f"{p}attn_bn"), s)
            if self.attention != "softmax":
                s = getattr(self, f"{p}attn_lif")(s)
        return _per_frame(self.proj_conv, s)


class TransformerBlock(nn.Module):
    """``x + Attention(x)`` then ``x + MLP(x)``; ``hierarchical`` adds a temporal attention
    (``tattn``) after the spatial one (docs/design.md §3.6)."""

    def __init__(self, dim: int, neuron: NeuronSpec, heads: int = 8, mlp_ratio: int = 4,
                 attention: str = "hamming", design: str = "joint",
                 scale: str | float | None = None) -> None:
        super().__init__()
        if design not in DESIGNS:
            raise ValueError(f"design must be one of {DESIGNS}, got {design!r}")
        first = "spatial" if design == "hierarchical" else design
        self.attn = SpikeAttention(dim, neuron, heads, attention, first, scale)
        if design == "hierarchical":
            self.tattn = SpikeAttention(dim, neuron, heads, attention, "temporal", scale)
        self.mlp = MLP(dim, neuron, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        if hasattr(self, "tattn"):
            x = x + self.tattn(x)
        return x + self.mlp(x)
