"""Spike-driven decoder head for video semantic segmentation (SPEC §4) and the full model.

:class:`SpikeSegHead` fuses the four stage outputs of the backbone (strides 4, 8, 16, 16)
into per-frame class logits at stride 4; :class:`SegSpikeVideoFormer` wraps a backbone and
the head and upsamples the logits to the input size::

    stage i (i = 1..4):  LIF → 1×1 conv C_i→d (no bias) → BN → nearest upsample to stride 4
    fuse:                Σ_i (membrane inputs) → LIF → 3×3 conv d→d (no bias) → BN
    classify:            LIF → 1×1 conv d→K (+bias)                       (stride-4 logits)
    output:              bilinear upsample to H×W, per frame → [B, T, K, H, W]

Spike-driven convention (as ``layers/blocks.py``): every convolution sees spikes (the output
of its own LIF — binary, or ``k/D`` with Integer-LIF); the real-valued BN outputs are only
summed and fed to the next LIF as membrane input (nearest upsampling copies values, so the
sum stays addition-only after BN folding). The lateral 1×1 convolutions run at each stage's
own resolution, before upsampling, which is equal to upsampling the spikes first
(1×1 conv and nearest upsampling commute) and 16× cheaper for the stride-16 stages.
Neurons keep their membrane over the T frames of a clip (time-first ``[T, B, ...]``);
convolutions and BN fold T into the batch. The final bilinear resize of the logits is the
read-out, outside the spiking network.

Parameters: ``(ΣC_i)·d + 9·d² + d·K + K`` plus BN (``10·d``); with the default
``decoder_dim = 8·c0`` that is 2,787,859 on ``svf_15m`` (d = 512, K = 19; backbone
14,755,720 without classification head → 17.54M in total, paper: 17.8M) and 175,892 on
``svf_tiny`` (d = 128, K = 4).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...layers.neuron import NeuronSpec
from ...models.backbone import SpikeVideoFormer, check_video

__all__ = ["SpikeSegHead", "SegSpikeVideoFormer", "default_decoder_dim", "head_parameter_count"]


def default_decoder_dim(embed_dim: Sequence[int]) -> int:
    """Decoder width used when none is given: ``8 · c0`` (512 for svf_15m, 128 for svf_tiny)."""
    return 8 * int(embed_dim[0])


def head_parameter_count(in_channels: Sequence[int], num_classes: int, decoder_dim: int) -> int:
    """Closed form of :class:`SpikeSegHead`'s parameter count (BN weight + bias = 2 per channel)."""
    d, k = int(decoder_dim), int(num_classes)
    lateral = sum(int(c) for c in in_channels) * d + len(in_channels) * 2 * d
    return lateral + 9 * d * d + 2 * d + d * k + k


def _per_frame(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Stateless ``module`` on ``[T, B, ...]`` with T folded into the batch."""
    T, B = x.shape[:2]
    y = module(x.flatten(0, 1))
    return y.reshape(T, B, *y.shape[1:])


class _Lateral(nn.Module):
    """One stage's branch: LIF → 1×1 conv (no bias) → BN."""

    def __init__(self, cin: int, dim: int, neuron: NeuronSpec) -> None:
        super().__init__()
        self.lif = neuron.make()
        self.conv = nn.Conv2d(cin, dim, 1, bias=False)
        self.bn = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _per_frame(lambda z: self.bn(self.conv(z)), self.lif(x))


class SpikeSegHead(nn.Module):
    """Spike-driven multi-stage fusion decoder (see the module docstring).

    Args:
        in_channels: channels of the stage features ``(c0, c1, c2, c3)``.
        num_classes: K, the number of segmentation classes.
        decoder_dim: width ``d`` of the fused features.
        neuron: how to build the neurons (the backbone's :class:`NeuronSpec`; ``spike_max=4``
            gives Integer-LIF as in the paper's segmentation model).
        upsample: ``"nearest"`` (default; addition-only) or ``"bilinear"`` for the lateral
            features before the sum.

    ``forward(feats)`` takes the time-major stage outputs ``[T, B, C_i, H_i, W_i]`` and returns
    stride-4 logits ``[T, B, K, H_0, W_0]`` (``H_0, W_0`` the size of the first stage).
    """

    def __init__(self, in_channels: Sequence[int], num_classes: int, decoder_dim: int,
                 neuron: NeuronSpec | None = None, upsample: str = "nearest") -> None:
        super().__init__()
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if int(decoder_dim) < 1:
            raise ValueError(f"decoder_dim must be >= 1, got {decoder_dim}")
        if upsample not in ("nearest", "bilinear"):
            raise ValueError(f"upsample must be 'nearest' or 'bilinear', got {upsample!r}")
        neuron = neuron or NeuronSpec()
        self.in_channels = tuple(int(c) for c in in_channels)
        self.num_classes, self.decoder_dim, self.upsample = int(num_classes), int(decoder_dim), upsample
        d = self.decoder_dim
        self.lateral = nn.ModuleList([_Lateral(c, d, neuron) for c in self.in_channels])
        self.fuse_lif = neuron.make()
        self.fuse_conv = nn.Conv2d(d, d, 3, padding=1, bias=False)
        self.fuse_bn = nn.BatchNorm2d(d)
        self.cls_lif = neuron.make()
        self.classifier = nn.Conv2d(d, self.num_classes, 1)

    def _resize(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if tuple(x.shape[-2:]) == tuple(size):
            return x
        T, B = x.shape[:2]
        kw = {"align_corners": False} if self.upsample == "bilinear" else {}
        y = F.interpolate(x.flatten(0, 1), size=size, mode=self.upsample, **kw)
        return y.reshape(T, B, *y.shape[1:])

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(feats) != len(self.lateral):
            raise ValueError(f"expected {len(self.lateral)} stage features, got {len(feats)}")
        size = tuple(feats[0].shape[-2:])
        fused = None
        for branch, f in zip(self.lateral, feats):
            y = self._resize(branch(f), size)
            fused = y if fused is None else fused + y
        x = _per_frame(lambda z: self.fuse_bn(self.fuse_conv(z)), self.fuse_lif(fused))
        return _per_frame(self.classifier, self.cls_lif(x))


class SegSpikeVideoFormer(nn.Module):
    """SpikeVideoFormer backbone + :class:`SpikeSegHead`: ``video [B, T, C, H, W]`` → logits
    ``[B, T, K, H, W]`` (per-frame class scores at the input resolution).

    Args:
        backbone: a :class:`~spikevideoformer.SpikeVideoFormer` (its classification head, if
            any, is not used); its neuron kind (LIF / Integer-LIF / ReLU) is used for the head.
        num_classes: K segmentation classes.
        decoder_dim: head width ``d`` (default :func:`default_decoder_dim`: ``8 · c0``).
        upsample: lateral upsampling mode of the head (``"nearest"`` or ``"bilinear"``).

    State-dict keys are ``backbone.*`` (identical to the backbone's own keys after the prefix)
    and ``head.*``.
    """

    def __init__(self, backbone: SpikeVideoFormer, num_classes: int, decoder_dim: int | None = None,
                 upsample: str = "nearest") -> None:
        super().__init__()
        if not hasattr(backbone, "forward_features"):
            raise TypeError(f"backbone must provide forward_features(video), got {type(backbone).__name__}")
        self.backbone = backbone
        channels = tuple(getattr(backbone, "feature_channels", None) or backbone.embed_dim)
        d = default_decoder_dim(channels) if decoder_dim is None else int(decoder_dim)
        self.num_classes = int(num_classes)
        self.head = SpikeSegHead(channels, num_classes, d, getattr(backbone, "neuron", None), upsample)

    @property
    def in_chans(self) -> int:
        return self.backbone.in_chans

    def forward_logits(self, video: torch.Tensor) -> torch.Tensor:
        """Stride-4 logits ``[B, T, K, H/4, W/4]`` (before the final upsampling)."""
        feats = self.backbone.forward_features(video)
        # forward_features returns batch-first views of time-major tensors: transposing back
        # gives the original contiguous [T, B, ...] layout without a copy
        out = self.head([f.transpose(0, 1) for f in feats])
        return out.transpose(0, 1)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        video = check_video(video, self.backbone.in_chans)
        B, T, _, H, W = video.shape
        low = self.forward_logits(video)  # [B, T, K, h, w]
        up = F.interpolate(low.flatten(0, 1), size=(H, W), mode="bilinear", align_corners=False)
        return up.reshape(B, T, *up.shape[1:])
