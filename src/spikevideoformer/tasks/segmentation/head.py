"""Spike-driven decoder head for video semantic segmentation (docs/design.md §4.3) and the full model.

:class:`SpikeSegHead` fuses the four stage outputs of the backbone (strides 4, 8, 16, 16)
into per-frame class logits at stride 4; :class:`SegSpikeVideoFormer` wraps a backbone and
the head and upsamples the logits to the input size::

    stage i (i = 1..4):  LIF → 1×1 conv C_i→d (no bias) → BN → nearest upsample to stride 4
    fuse:                m = Σ_i lateral_i;   y = m + BN(3×3 conv d→d (no bias)(LIF(m)))
    classify:            LIF(y) → 1×1 conv d→K (+bias)                    (stride-4 logits)
    output:              bilinear upsample to H×W, per frame → [B, T, K, H, W]

The fuse stage is a residual block with a membrane shortcut, like the backbone's blocks
(``residual=False`` drops the ``m +``): the classifier's neuron sees the lateral sum directly,
which keeps the spiking depth between the features and the logits at two neurons and
roughly doubles the classifier neuron's input variance (it fires more at initialisation).

Spike-driven convention (as ``layers/blocks.py``): every convolution sees spikes (the output
of its own LIF — binary, or ``k/D`` with Integer-LIF); the real-valued BN outputs are only
summed and fed to the next LIF as membrane input (nearest upsampling copies values, so the
sum stays addition-only after BN folding). The lateral 1×1 convolutions run at each stage's
own resolution, before upsampling, which is equal to upsampling the spikes first
(1×1 conv and nearest upsampling commute) and 16× cheaper for the stride-16 stages.
Neurons keep their membrane over the T frames of a clip (time-first ``[T, B, ...]``);
convolutions and BN fold T into the batch. The final bilinear resize of the logits is the
read-out, outside the spiking network.

Parameters: ``(ΣC_i)·d + 9·d² + d·K + K`` plus BN (``10·d``). Default widths
(:data:`DECODER_DIMS`): svf_15m d = 512 → 2,787,859 for K = 19 (backbone 14,755,720 without
classification head → 17,543,579 in all; paper: 17.8M); svf_tiny d = 64 → 50,052 for K = 4.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...layers.blocks import per_frame
from ...layers.neuron import NeuronParams
from ...models.backbone import SpikeVideoFormer, check_video

__all__ = ["SpikeSegHead", "SegSpikeVideoFormer", "DECODER_DIMS", "default_decoder_dim", "head_parameter_count"]


# decoder width d per registered backbone size; svf_15m's 512 puts the head at 2.79M parameters
# (paper: 17.8M with head on a 15M backbone); the toy svf_tiny gets a narrow, CPU-friendly head
DECODER_DIMS = {(16, 32, 64, 80): 64, (64, 128, 256, 360): 512, (96, 192, 384, 480): 768,
                (128, 256, 512, 640): 1024}


def default_decoder_dim(embed_dim: Sequence[int]) -> int:
    """Decoder width used when none is given: :data:`DECODER_DIMS` for the registered sizes
    (svf_tiny 64, svf_15m 512, svf_31m 768, svf_55m 1024), else ``8 · c0``."""
    key = tuple(int(c) for c in embed_dim)
    return DECODER_DIMS.get(key, 8 * key[0])


def head_parameter_count(in_channels: Sequence[int], num_classes: int, decoder_dim: int) -> int:
    """Closed form of :class:`SpikeSegHead`'s parameter count (BN weight + bias = 2 per channel)."""
    d, k = int(decoder_dim), int(num_classes)
    lateral = sum(int(c) for c in in_channels) * d + len(in_channels) * 2 * d
    return lateral + 9 * d * d + 2 * d + d * k + k


class _Lateral(nn.Module):
    """One stage's branch: LIF → 1×1 conv (no bias) → BN."""

    def __init__(self, cin: int, dim: int, neuron: NeuronParams) -> None:
        super().__init__()
        self.lif = neuron.make()
        self.conv = nn.Conv2d(cin, dim, 1, bias=False)
        self.bn = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return per_frame(lambda z: self.bn(self.conv(z)), self.lif(x))


class SpikeSegHead(nn.Module):
    """Spike-driven multi-stage fusion decoder (see the module docstring).

    Args:
        in_channels: channels of the stage features ``(c0, c1, c2, c3)``.
        num_classes: K, the number of segmentation classes.
        decoder_dim: width ``d`` of the fused features.
        neuron: how to build the neurons (the backbone's :class:`NeuronParams`; ``spike_max=4``
            gives Integer-LIF as in the paper's segmentation model).
        upsample: ``"nearest"`` (default; addition-only) or ``"bilinear"`` for the lateral
            features before the sum.
        residual: membrane shortcut around the 3×3 fuse convolution (default True).

    ``forward(feats)`` takes the time-major stage outputs ``[T, B, C_i, H_i, W_i]`` and returns
    stride-4 logits ``[T, B, K, H_0, W_0]`` (``H_0, W_0`` the size of the first stage).
    """

    def __init__(self, in_channels: Sequence[int], num_classes: int, decoder_dim: int,
                 neuron: NeuronParams | None = None, upsample: str = "nearest",
                 residual: bool = True) -> None:
        super().__init__()
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if int(decoder_dim) < 1:
            raise ValueError(f"decoder_dim must be >= 1, got {decoder_dim}")
        if upsample not in ("nearest", "bilinear"):
            raise ValueError(f"upsample must be 'nearest' or 'bilinear', got {upsample!r}")
        neuron = neuron or NeuronParams()
        self.in_channels = tuple(int(c) for c in in_channels)
        self.num_classes, self.decoder_dim, self.upsample = int(num_classes), int(decoder_dim), upsample
        self.residual = bool(residual)
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

    def deploy_layout(self) -> dict:
        """The decoder's dataflow, for engines that rebuild it layer by layer (``deploy.integer``,
        which may not import this package): ``lateral`` per stage ``(lif, conv, bn)``, each conv
        at its stage's resolution and then resized (``upsample``) to stride 4 and summed;
        ``fuse`` ``(lif, conv, bn)`` with ``residual`` the shortcut; ``classify`` ``(lif, conv)``."""
        return {"lateral": [(br.lif, br.conv, br.bn) for br in self.lateral], "upsample": self.upsample,
                "fuse": (self.fuse_lif, self.fuse_conv, self.fuse_bn), "residual": self.residual,
                "classify": (self.cls_lif, self.classifier)}

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(feats) != len(self.lateral):
            raise ValueError(f"expected {len(self.lateral)} stage features, got {len(feats)}")
        size = tuple(feats[0].shape[-2:])
        fused = None
        for branch, f in zip(self.lateral, feats):
            y = self._resize(branch(f), size)
            fused = y if fused is None else fused + y
        x = per_frame(lambda z: self.fuse_bn(self.fuse_conv(z)), self.fuse_lif(fused))
        if self.residual:
            x = x + fused
        return per_frame(self.classifier, self.cls_lif(x))


class SegSpikeVideoFormer(nn.Module):
    """SpikeVideoFormer backbone + :class:`SpikeSegHead`: ``video [B, T, C, H, W]`` → logits
    ``[B, T, K, H, W]`` (per-frame class scores at the input resolution).

    Args:
        backbone: a :class:`~spikevideoformer.SpikeVideoFormer` (its classification head, if
            any, is not used); its neuron kind (LIF / Integer-LIF / ReLU) is used for the head.
        num_classes: K segmentation classes.
        decoder_dim: head width ``d`` (default :func:`default_decoder_dim`: 512 for svf_15m,
            64 for svf_tiny, ``8 · c0`` for unregistered widths).
        upsample: lateral upsampling mode of the head (``"nearest"`` or ``"bilinear"``).
        residual: membrane shortcut around the head's 3×3 fuse convolution.

    State-dict keys are ``backbone.*`` (identical to the backbone's own keys after the prefix)
    and ``head.*``.
    """

    def __init__(self, backbone: SpikeVideoFormer, num_classes: int, decoder_dim: int | None = None,
                 upsample: str = "nearest", residual: bool = True) -> None:
        super().__init__()
        if not hasattr(backbone, "forward_features"):
            raise TypeError(f"backbone must provide forward_features(video), got {type(backbone).__name__}")
        self.backbone = backbone
        channels = tuple(getattr(backbone, "feature_channels", None) or backbone.embed_dim)
        d = default_decoder_dim(channels) if decoder_dim is None else int(decoder_dim)
        self.num_classes = int(num_classes)
        self.head = SpikeSegHead(channels, num_classes, d, getattr(backbone, "neuron", None), upsample, residual)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Activation checkpointing of the backbone's blocks (the head is not checkpointed);
        see :meth:`SpikeVideoFormer.set_grad_checkpointing`."""
        self.backbone.set_grad_checkpointing(enable)

    @torch.no_grad()
    def init_class_prior(self, class_freq: torch.Tensor, smoothing: float = 0.1) -> torch.Tensor:
        """Set the classifier bias to the log class prior (RetinaNet-style prior init).

        With sparse spikes at initialisation the logits are mostly the bias, so a zero bias
        starts at the uniform prior and spends many steps learning the class frequencies.
        ``p = (1 - smoothing) · freq + smoothing / K`` keeps rare or unseen classes learnable.
        Returns the bias.
        """
        freq = torch.as_tensor(class_freq, dtype=torch.float64).flatten()
        if freq.numel() != self.num_classes or bool((freq < 0).any()) or float(freq.sum()) <= 0:
            raise ValueError(f"class_freq must be {self.num_classes} non-negative counts, got {freq.tolist()}")
        p = (1 - smoothing) * freq / freq.sum() + smoothing / self.num_classes
        bias = self.head.classifier.bias
        bias.copy_(p.log().to(bias))
        return bias.detach().clone()

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
