"""Backbone building blocks (docs/design.md §2, §3.1) on ``[T, B, C, H, W]``.

Every spiking branch starts with its own neuron (membrane shortcut); only stateless layers
(conv, BN) fold ``T`` into the batch (:func:`per_frame`). Module names follow the official
code, so official state_dicts load with the identity mapping. A part that a variant lacks is
``None`` (the stem's ``encode_lif``, the Q/K/V neurons of softmax attention, ``attn_bn`` of
SDSA, ``tattn`` outside the hierarchical design, ``temporal`` outside the factorized one).

Each block declares its own inference fold (docs/design.md §6): ``fuse()`` folds its BatchNorms
into the preceding convolutions and its RepConvs into their factorised (or dense 3×3) inference
form, in place, and
``spike_consumers()`` lists ``(neuron, layers fed only by its spikes)`` for the Integer-LIF
``1/D`` move (§6.4). ``deploy.fold`` walks a model and calls them.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .attention import (
    GROUPINGS, apply_scale, dot_linear, from_tokens, hamming_linear, resolve_scale,
    softmax_attention, to_tokens,
)
from .fuse import bn_affine, fuse_conv_bn
from .neuron import NeuronParams
from .repconv import RepConv, entry_layer, fuse_repconv_bn

__all__ = [
    "ATTENTIONS", "DESIGNS", "per_frame", "DownSampling", "SepConv", "ConvBlock", "MLP",
    "AttentionBranch", "SpikeAttention", "TransformerBlock", "state_dict_name",
]

ATTENTIONS = ("hamming", "dot", "softmax")
DESIGNS = ("joint", "spatial", "factorized", "hierarchical")

Consumers = list[tuple[nn.Module, list[nn.Module]]]


def per_frame(module: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Apply a stateless ``module`` to ``[T, B, ...]`` with T folded into the batch."""
    T, B = x.shape[:2]
    y = module(x.flatten(0, 1))
    return y.reshape(T, B, *y.shape[1:])


class DownSampling(nn.Module):
    """[LIF →] conv k×k (+bias) → BN. The stem (``first=True``) has no neuron (docs/design.md §2.2)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, padding: int,
                 neuron: NeuronParams, first: bool = False) -> None:
        super().__init__()
        self.encode_conv = nn.Conv2d(cin, cout, kernel, stride, padding)
        self.encode_bn = nn.BatchNorm2d(cout)
        self.encode_lif = None if first else neuron.make()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.encode_lif is not None:
            x = self.encode_lif(x)
        return per_frame(lambda z: self.encode_bn(self.encode_conv(z)), x)

    def fuse(self) -> None:
        """``encode_bn`` into ``encode_conv`` (docs/design.md §6.1)."""
        self.encode_conv = fuse_conv_bn(self.encode_conv, self.encode_bn)
        self.encode_bn = nn.Identity()

    def spike_consumers(self) -> Consumers:
        return [] if self.encode_lif is None else [(self.encode_lif, [self.encode_conv])]


class SepConv(nn.Module):
    """LIF → 1×1 C→2C → BN → LIF → dw 7×7 → 1×1 2C→C → BN (no biases)."""

    def __init__(self, dim: int, neuron: NeuronParams, expansion: int = 2, kernel: int = 7) -> None:
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
        x = per_frame(lambda z: self.bn1(self.pwconv1(z)), self.lif1(x))
        return per_frame(lambda z: self.bn2(self.pwconv2(self.dwconv(z))), self.lif2(x))

    def fuse(self) -> None:
        """``bn1`` into ``pwconv1``, ``bn2`` into ``pwconv2``."""
        self.pwconv1, self.bn1 = fuse_conv_bn(self.pwconv1, self.bn1), nn.Identity()
        self.pwconv2, self.bn2 = fuse_conv_bn(self.pwconv2, self.bn2), nn.Identity()

    def spike_consumers(self) -> Consumers:
        return [(self.lif1, [self.pwconv1]), (self.lif2, [self.dwconv])]

    def residual_norms(self) -> list[nn.Module]:
        """The norm that ends this residual branch (docs/design.md §7.2: zero-init)."""
        return [self.bn2]


class ConvBlock(nn.Module):
    """CNN block: ``x + SepConv(x)``, then ``x + ChannelConv(x)`` (docs/design.md §2.3)."""

    def __init__(self, dim: int, neuron: NeuronParams, mlp_ratio: int = 4) -> None:
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
        y = per_frame(lambda z: self.bn1(self.conv1(z)), self.lif1(x))
        y = per_frame(lambda z: self.bn2(self.conv2(z)), self.lif2(y))
        return x + y

    def fuse(self) -> None:
        """The ChannelConv's BNs into its convs (``Conv``, the SepConv, fuses itself)."""
        self.conv1, self.bn1 = fuse_conv_bn(self.conv1, self.bn1), nn.Identity()
        self.conv2, self.bn2 = fuse_conv_bn(self.conv2, self.bn2), nn.Identity()

    def spike_consumers(self) -> Consumers:
        return [(self.lif1, [self.conv1]), (self.lif2, [self.conv2])]

    def residual_norms(self) -> list[nn.Module]:
        """The ChannelConv branch's last norm (``Conv`` declares its own)."""
        return [self.bn2]


class MLP(nn.Module):
    """LIF → 1×1 C→4C (+bias) → BN → LIF → 1×1 4C→C (+bias) → BN, on flattened tokens."""

    def __init__(self, dim: int, neuron: NeuronParams, mlp_ratio: int = 4) -> None:
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
        x = per_frame(lambda z: self.fc1_bn(self.fc1_conv(z)), self.fc1_lif(x))
        x = per_frame(lambda z: self.fc2_bn(self.fc2_conv(z)), self.fc2_lif(x))
        return x.reshape(T, B, C, H, W)

    def fuse(self) -> None:
        self.fc1_conv, self.fc1_bn = fuse_conv_bn(self.fc1_conv, self.fc1_bn), nn.Identity()
        self.fc2_conv, self.fc2_bn = fuse_conv_bn(self.fc2_conv, self.fc2_bn), nn.Identity()

    def spike_consumers(self) -> Consumers:
        return [(self.fc1_lif, [self.fc1_conv]), (self.fc2_lif, [self.fc2_conv])]

    def residual_norms(self) -> list[nn.Module]:
        return [self.fc2_bn]


def _repconv_bn(dim: int) -> nn.Sequential:
    return nn.Sequential(RepConv(dim, dim), nn.BatchNorm2d(dim))


class AttentionBranch(nn.Module):
    """One attention branch on spikes ``s`` (docs/design.md §3.1): ``q, k, v = LIF(BN(RepConv(s)))``
    → core over the token ``grouping`` → ``attn_bn`` → ``attn_lif``.

    Cores: ``hamming`` (SDHA with scale, ``attn_bn``, ``attn_lif`` v_th 1.0), ``dot`` (SDSA ×1/8,
    ``attn_lif`` v_th 0.5, ``attn_bn`` None), ``softmax`` (real-valued ANN counterpart; the
    ``*_lif`` and ``attn_bn`` are None).
    """

    def __init__(self, dim: int, neuron: NeuronParams, heads: int = 8, attention: str = "hamming",
                 grouping: str = "joint", scale: str | float | None = None) -> None:
        super().__init__()
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {attention!r}")
        if grouping not in GROUPINGS:
            raise ValueError(f"grouping must be one of {GROUPINGS}, got {grouping!r}")
        if dim % heads:
            raise ValueError(f"channels {dim} must be divisible by heads {heads}")
        self.dim, self.heads, self.attention, self.grouping = dim, heads, attention, grouping
        if scale is None:
            scale = {"hamming": "1/(2C)", "dot": "1/8", "softmax": "1/sqrt(d)"}[attention]
        self.scale = resolve_scale(scale, dim, dim // heads)
        spiking = attention != "softmax"
        self.q_conv = _repconv_bn(dim)
        self.q_lif = neuron.make() if spiking else None
        self.k_conv = _repconv_bn(dim)
        self.k_lif = neuron.make() if spiking else None
        self.v_conv = _repconv_bn(dim)
        self.v_lif = neuron.make() if spiking else None
        self.attn_bn = nn.BatchNorm2d(dim) if attention == "hamming" else None
        self.attn_lif = neuron.make(v_th=1.0 if attention == "hamming" else 0.5) if spiking else None

    @staticmethod
    def _project(conv: nn.Module, lif: nn.Module | None, s: torch.Tensor) -> torch.Tensor:
        y = per_frame(conv, s)
        return y if lif is None else lif(y)

    def core(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attention core on ``[T, B, C, H, W]`` q/k/v; returns the pre-BN/LIF ``[T, B, C, H, W]``."""
        shape = q.shape
        qt, kt, vt = (to_tokens(z, self.heads, self.grouping) for z in (q, k, v))
        if self.attention == "hamming":
            y = apply_scale(hamming_linear(qt, kt, vt), self.scale)
        elif self.attention == "dot":
            y = apply_scale(dot_linear(qt, kt, vt), self.scale)
        else:
            y = softmax_attention(qt, kt, vt)
        return from_tokens(y, shape, self.grouping)

    def attend(self, s: torch.Tensor) -> torch.Tensor:
        """The branch on spikes ``s [T, B, C, H, W]``."""
        q = self._project(self.q_conv, self.q_lif, s)
        k = self._project(self.k_conv, self.k_lif, s)
        v = self._project(self.v_conv, self.v_lif, s)
        y = self.core(q, k, v)
        if self.attn_bn is not None:
            y = per_frame(self.attn_bn, y)
        return y if self.attn_lif is None else self.attn_lif(y)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.attend(s)

    def fuse(self, repconv: str = "auto") -> None:
        """Each ``RepConv → BN`` of q/k/v into its inference form (docs/design.md §6.2):
        ``repconv`` ``"dense"`` one 3×3 conv, ``"factorised"`` a ``FusedRepConv``, ``"auto"``
        the one with fewer MACs (``layers.repconv.fuse_repconv_bn``)."""
        self.q_conv = fuse_repconv_bn(self.q_conv, repconv)
        self.k_conv = fuse_repconv_bn(self.k_conv, repconv)
        self.v_conv = fuse_repconv_bn(self.v_conv, repconv)

    def fuse_scale(self, make_neuron: Callable[..., nn.Module | None]) -> None:
        """Move the scale and ``attn_bn`` into the attention neuron (docs/design.md §6.3).

        ``make_neuron(attn_lif, gain, shift, scale, like)`` gets the per-channel affine of
        ``attn_bn`` (float64; 1 and 0 without one), the scale and a tensor whose dtype/device
        the result takes; it returns the replacement neuron, or None to leave the branch as is.
        """
        if self.attn_lif is None:
            return
        like = next(self.parameters())
        if isinstance(self.attn_bn, nn.modules.batchnorm._BatchNorm):
            gain, shift = bn_affine(self.attn_bn)
        else:
            gain = torch.ones(self.dim, dtype=torch.float64)
            shift = torch.zeros(self.dim, dtype=torch.float64)
        new = make_neuron(self.attn_lif, gain, shift, self.scale, like)
        if new is None:
            return
        self.attn_lif = new
        if self.attn_bn is not None:
            self.attn_bn = nn.Identity()
        self.scale = ("mul", 1.0)  # absorbed (×1.0 is exact)

    def spike_consumers(self) -> Consumers:
        return []  # q/k/v neurons feed the core; the module that owns the branch declares attn_lif's


class SpikeAttention(AttentionBranch):
    """Attention module (docs/design.md §3.1): ``s = head_lif(x)`` → branch → ``proj_conv``
    (``BN(RepConv(·))``).

    The module is its own first branch (``q_conv`` … ``attn_lif``, the official names).
    ``grouping="factorized"`` runs that branch per frame and then a second, temporal branch,
    the child ``temporal`` (docs/design.md §3.6); its state_dict keys keep the flat names
    ``t_q_conv.…``, ``t_attn_bn.…`` (see :func:`state_dict_name`).
    """

    SAVED_PREFIX = "t_"  # state_dict name of the ``temporal.`` branch

    def __init__(self, dim: int, neuron: NeuronParams, heads: int = 8, attention: str = "hamming",
                 grouping: str = "joint", scale: str | float | None = None) -> None:
        if grouping not in GROUPINGS + ("factorized",):
            raise ValueError(f"grouping must be one of {GROUPINGS + ('factorized',)}, got {grouping!r}")
        factorized = grouping == "factorized"
        super().__init__(dim, neuron, heads, attention, "spatial" if factorized else grouping, scale)
        self.head_lif = neuron.make()
        self.temporal = (AttentionBranch(dim, neuron, heads, attention, "temporal", scale)
                         if factorized else None)
        self.proj_conv = _repconv_bn(dim)
        if factorized:
            _register_flat_keys(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.attend(self.head_lif(x))
        if self.temporal is not None:
            s = self.temporal(s)
        return per_frame(self.proj_conv, s)

    def fuse(self, repconv: str = "auto") -> None:
        """q/k/v and ``proj_conv`` into their inference forms (``temporal`` fuses itself)."""
        super().fuse(repconv)
        self.proj_conv = fuse_repconv_bn(self.proj_conv, repconv)

    def residual_norms(self) -> list[nn.Module]:
        proj = self.proj_conv  # folded: one conv, no norm left
        return [proj[-1] if isinstance(proj, nn.Sequential) else proj]

    def spike_consumers(self) -> Consumers:
        t = self.temporal
        e = entry_layer  # a FusedRepConv's spikes enter its first 1×1 conv
        out = [(self.head_lif, [e(self.q_conv), e(self.k_conv), e(self.v_conv)])]
        if t is None:
            out.append((self.attn_lif, [e(self.proj_conv)]))
        else:
            out += [(self.attn_lif, [e(t.q_conv), e(t.k_conv), e(t.v_conv)]),
                    (t.attn_lif, [e(self.proj_conv)])]
        return [(n, c) for n, c in out if n is not None]


def _save_flat(module: nn.Module, state_dict, prefix: str, local_metadata) -> None:
    """state_dict post-hook: ``<prefix>temporal.x`` → ``<prefix>t_x``, order kept."""
    old, new = prefix + "temporal.", prefix + SpikeAttention.SAVED_PREFIX
    for key in [k for k in state_dict if k.startswith(prefix)]:  # this module's keys, in order
        value = state_dict.pop(key)
        state_dict[new + key[len(old):] if key.startswith(old) else key] = value


def _load_flat(module: nn.Module, state_dict, prefix: str, *args) -> None:
    """load_state_dict pre-hook: ``<prefix>t_x`` → ``<prefix>temporal.x``."""
    old, new = prefix + SpikeAttention.SAVED_PREFIX, prefix + "temporal."
    for key in [k for k in state_dict if k.startswith(old)]:
        state_dict[new + key[len(old):]] = state_dict.pop(key)


def _register_flat_keys(module: nn.Module) -> None:
    if "register_state_dict_post_hook" in dir(nn.Module):  # torch >= 2.5
        module.register_state_dict_post_hook(_save_flat)
        module.register_load_state_dict_pre_hook(_load_flat)
    else:  # the same hooks under their older, private names
        module._register_state_dict_hook(_save_flat)
        module._register_load_state_dict_pre_hook(_load_flat, with_module=True)


def state_dict_name(model: nn.Module, path: str) -> str:
    """The state_dict name of submodule ``path`` of ``model``: the path itself, except inside a
    factorized attention's temporal branch (``….attn.temporal.q_conv`` → ``….attn.t_q_conv``)."""
    parts = path.split(".")
    for i in range(len(parts) - 1):
        if parts[i] == "temporal":
            owner = model.get_submodule(".".join(parts[:i]))
            if isinstance(owner, SpikeAttention):
                flat = SpikeAttention.SAVED_PREFIX + parts[i + 1]
                return ".".join(parts[:i] + [flat] + parts[i + 2:])
    return path


class TransformerBlock(nn.Module):
    """``x + Attention(x)`` then ``x + MLP(x)``; ``hierarchical`` adds a temporal attention
    (``tattn``) after the spatial one (docs/design.md §3.6)."""

    def __init__(self, dim: int, neuron: NeuronParams, heads: int = 8, mlp_ratio: int = 4,
                 attention: str = "hamming", design: str = "joint",
                 scale: str | float | None = None) -> None:
        super().__init__()
        if design not in DESIGNS:
            raise ValueError(f"design must be one of {DESIGNS}, got {design!r}")
        hierarchical = design == "hierarchical"
        self.attn = SpikeAttention(dim, neuron, heads, attention,
                                   "spatial" if hierarchical else design, scale)
        self.tattn = (SpikeAttention(dim, neuron, heads, attention, "temporal", scale)
                      if hierarchical else None)
        self.mlp = MLP(dim, neuron, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        if self.tattn is not None:
            x = x + self.tattn(x)
        return x + self.mlp(x)
