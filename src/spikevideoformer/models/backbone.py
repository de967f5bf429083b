"""SpikeVideoFormer: the 4-stage Meta-SpikeFormer-style backbone + classification head (docs/design.md §2).

Public layout is batch first ``[B, T, C, H, W]``; inside the network runs on
``[T, B, C, H, W]``. Attribute names equal the official ``metaspikformer.py`` module names, so
official state_dicts load with the identity mapping (see ``models/official.py``).

The model owns its structure: :data:`STAGE_LAYOUT` says which top-level modules make up the
stem, stages 1-4 and the head (docs/design.md §2.2); the forward pass, :meth:`stage_of`,
:meth:`stage_modules` and ``feature_info`` read it, and so do the analysis tools.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from ..layers.blocks import ATTENTIONS, DESIGNS, ConvBlock, DownSampling, TransformerBlock
from ..layers.grad_checkpoint import checkpoint_block
from ..layers.lif_backends import graph_capture
from ..layers.neuron import NeuronParams

__all__ = ["SpikeVideoFormer", "check_video", "STAGES", "STAGE_LAYOUT"]

MIN_SIZE = 16  # four stride-2 stages

# stage → its top-level modules in forward order (docs/design.md §2.2 table); a ModuleList
# runs its blocks in turn. The stem is the direct-encoding conv alone (§2.1).
STAGE_LAYOUT: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("stem", ("downsample1_1",)),
    ("stage1", ("ConvBlock1_1", "downsample1_2", "ConvBlock1_2")),
    ("stage2", ("downsample2", "ConvBlock2_1", "ConvBlock2_2")),
    ("stage3", ("downsample3", "block3")),
    ("stage4", ("downsample4", "block4")),
    ("head", ("head_lif", "head", "head_kd")),
)
STAGES = tuple(stage for stage, _ in STAGE_LAYOUT)
_STAGE_OF = {name: stage for stage, names in STAGE_LAYOUT for name in names}


def check_video(video: torch.Tensor, in_chans: int, finite: bool | None = None) -> torch.Tensor:
    """Validate a public input and return it as ``[B, T, C, H, W]`` (an image is T = 1).

    Raises one ``TypeError``/``ValueError`` naming the problem (rank, channels, T, size, dtype,
    non-finite values) instead of a failure deep inside torch. Shape and dtype checks cost
    nothing; the NaN/inf check reads every value and, on an accelerator, waits for the device
    (a host sync per forward), so ``finite=None`` (default) runs it only for CPU tensors and not
    while a graph is captured (it would break the graph); ``True`` always, ``False`` never.
    """
    if not isinstance(video, torch.Tensor):
        raise TypeError(f"video must be a torch.Tensor, got {type(video).__name__}")
    if not video.is_floating_point():
        raise TypeError(
            f"video must be a floating-point tensor (e.g. float32 in [0, 1] then normalised), "
            f"got dtype {video.dtype}; convert uint8 frames with video.float() / 255"
        )
    if video.dim() == 4:
        video = video.unsqueeze(1)
    if video.dim() != 5:
        raise ValueError(
            f"video must be [B, T, {in_chans}, H, W] (or an image [B, {in_chans}, H, W]), "
            f"got shape {tuple(video.shape)}"
        )
    B, T, C, H, W = video.shape
    if B == 0:
        raise ValueError("video batch is empty (B = 0)")
    if T == 0:
        raise ValueError(f"video has T = 0 frames (shape {tuple(video.shape)})")
    if C != in_chans:
        raise ValueError(
            f"video has {C} channels but the model expects in_chans={in_chans} "
            f"(shape {tuple(video.shape)}, layout [B, T, C, H, W])"
        )
    if H < MIN_SIZE or W < MIN_SIZE:
        raise ValueError(
            f"frames of {H}x{W} are too small: the backbone downsamples 16x, "
            f"use at least {MIN_SIZE}x{MIN_SIZE}"
        )
    if finite is None:  # data-dependent: skipped while a graph is captured (torch.compile, export)
        finite = video.device.type == "cpu" and not graph_capture()
    if finite and not torch.isfinite(video).all():
        raise ValueError("video contains NaN or inf values")
    return video


class SpikeVideoFormer(nn.Module):
    """Spike-driven video transformer (Zou et al., ICML 2025).

    Args:
        embed_dim: channel widths ``(c0, c1, c2, c3)`` of the four stages (docs/design.md §2.6).
        num_classes: classes of the linear head; 0 builds no head (feature extractor).
        in_chans: input channels (3 for RGB, 2 for event frames).
        attention: ``"hamming"`` (SDHA), ``"dot"`` (SDSA) or ``"softmax"`` (ANN counterpart).
        design: ``"joint"``, ``"spatial"``, ``"factorized"`` or ``"hierarchical"`` (docs/design.md §3.6).
        neuron: :class:`NeuronParams` (LIF/Integer-LIF, or ReLU for the ANN counterpart).
        heads: attention heads (8).
        mlp_ratio: MLP hidden width / width (4).
        depths: transformer blocks in stages 3 and 4 (6, 2).
        scale: attention scale (``"1/(2C)"``, ``"1/8"``, ``"1/sqrt(d)"`` or a float).
        kd: also build the distillation head ``head_kd`` (output = mean of both heads).
    """

    def __init__(self, embed_dim: Sequence[int] = (64, 128, 256, 360), num_classes: int = 1000,
                 in_chans: int = 3, attention: str = "hamming", design: str = "joint",
                 neuron: NeuronParams | None = None, heads: int = 8, mlp_ratio: int = 4,
                 depths: Sequence[int] = (6, 2), scale: str | float | None = None,
                 kd: bool = False) -> None:
        super().__init__()
        embed_dim = tuple(int(c) for c in embed_dim)
        if len(embed_dim) != 4 or any(c <= 0 for c in embed_dim):
            raise ValueError(f"embed_dim must be 4 positive ints, got {embed_dim}")
        if embed_dim[0] % 2:
            raise ValueError(f"embed_dim[0] must be even (stem has c0/2 channels), got {embed_dim[0]}")
        for c in embed_dim[2:]:
            if c % heads:
                raise ValueError(f"stage width {c} is not divisible by heads={heads}")
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {attention!r}")
        if design not in DESIGNS:
            raise ValueError(f"design must be one of {DESIGNS}, got {design!r}")
        if in_chans < 1:
            raise ValueError(f"in_chans must be >= 1, got {in_chans}")
        neuron = neuron or NeuronParams()
        self.embed_dim, self.in_chans, self.num_classes = embed_dim, in_chans, num_classes
        self.attention, self.design, self.neuron = attention, design, neuron
        c0, c1, c2, c3 = embed_dim

        self.downsample1_1 = DownSampling(in_chans, c0 // 2, 7, 2, 3, neuron, first=True)
        self.ConvBlock1_1 = nn.ModuleList([ConvBlock(c0 // 2, neuron, mlp_ratio)])
        self.downsample1_2 = DownSampling(c0 // 2, c0, 3, 2, 1, neuron)
        self.ConvBlock1_2 = nn.ModuleList([ConvBlock(c0, neuron, mlp_ratio)])
        self.downsample2 = DownSampling(c0, c1, 3, 2, 1, neuron)
        self.ConvBlock2_1 = nn.ModuleList([ConvBlock(c1, neuron, mlp_ratio)])
        self.ConvBlock2_2 = nn.ModuleList([ConvBlock(c1, neuron, mlp_ratio)])
        self.downsample3 = DownSampling(c1, c2, 3, 2, 1, neuron)
        block = dict(neuron=neuron, heads=heads, mlp_ratio=mlp_ratio, attention=attention,
                     design=design, scale=scale)
        self.block3 = nn.ModuleList([TransformerBlock(c2, **block) for _ in range(depths[0])])
        self.downsample4 = DownSampling(c2, c3, 3, 1, 1, neuron)
        self.block4 = nn.ModuleList([TransformerBlock(c3, **block) for _ in range(depths[1])])
        self.head_lif = neuron.make()
        self.head = nn.Linear(c3, num_classes) if num_classes > 0 else nn.Identity()
        self.head_kd = ((nn.Linear(c3, num_classes) if num_classes > 0 else nn.Identity())
                        if kd else None)
        self.feature_info = self._feature_info()
        self.grad_checkpointing = False

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Activation checkpointing per block (timm's API): with ``enable`` and grad enabled,
        every backbone block (stem, downsamplings, ConvBlocks, TransformerBlocks) keeps only
        its input ``[T, B, C, H, W]`` and is recomputed in backward. Gradients, spikes and
        BatchNorm running statistics equal those without it (``layers/grad_checkpoint.py``);
        costs one extra backbone forward per step. Per block, not per stage: a stage segment
        would rebuild all its blocks' activations at once in backward (stage 3 has 6 blocks),
        so the peak would be several blocks' activations instead of one."""
        self.grad_checkpointing = bool(enable)

    # ------------------------------------------------------------------ structure
    def stage_of(self, name: str) -> str:
        """Stage (``"stem"``, ``"stage1"`` … ``"stage4"``, ``"head"``) of a module or parameter
        name of this model, from :data:`STAGE_LAYOUT`; ``"other"`` for a name outside it."""
        return _STAGE_OF.get(name.split(".", 1)[0], "other")

    def stage_modules(self) -> dict[str, dict[str, nn.Module]]:
        """Stage → its top-level modules (name → module) in forward order; absent parts
        (``head_kd`` without ``kd``) are left out."""
        return {stage: {n: getattr(self, n) for n in names if getattr(self, n) is not None}
                for stage, names in STAGE_LAYOUT}

    def _feature_info(self) -> list[dict]:
        """timm-style description of the four outputs of :meth:`forward_features`: ``module``
        (the last module run in the stage, whose output it is), ``num_chs``, ``reduction``
        (input size / feature size, from the convolution strides) and ``stage`` (1-4)."""
        info, reduction, last = [], 1, None
        for i, mods in enumerate(list(self.stage_modules().values())[:5]):  # stem, stage1-4
            for name, mod in mods.items():
                reduction *= math.prod(m.stride[0] for m in mod.modules() if isinstance(m, nn.Conv2d))
                if not isinstance(mod, nn.ModuleList):
                    last = name
                elif len(mod):
                    last = f"{name}.{len(mod) - 1}"
            if i:
                info.append({"module": last, "num_chs": self.embed_dim[i - 1],
                             "reduction": reduction, "stage": i})
        return info

    def spike_consumers(self) -> list[tuple[nn.Module, list[nn.Module]]]:
        """``head_lif`` feeds only the classifier(s) (Integer-LIF ``1/D`` fold, docs/design.md §6.4)."""
        heads = [self.head] + ([] if self.head_kd is None else [self.head_kd])
        return [(self.head_lif, heads)]

    @property
    def feature_channels(self) -> tuple[int, int, int, int]:
        """Channels of the four stage outputs of :meth:`forward_features`."""
        return self.embed_dim

    def _stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Run the backbone on ``[T, B, C, H, W]``; returns the 4 stage outputs (time major)."""
        feats = []
        ckpt = (self.grad_checkpointing and torch.is_grad_enabled()
                and not torch.jit.is_tracing() and not torch.jit.is_scripting())
        for stage, names in STAGE_LAYOUT[:-1]:  # stem, stage1 … stage4 (the head is separate)
            for name in names:
                mod = getattr(self, name)
                for blk in (mod if isinstance(mod, nn.ModuleList) else (mod,)):
                    x = checkpoint_block(blk, x) if ckpt else blk(x)
            if stage != "stem":
                feats.append(x)
        return feats

    def forward_features(self, video: torch.Tensor) -> list[torch.Tensor]:
        """``video [B, T, C, H, W]`` → the 4 stage outputs, each ``[B, T, C_i, H_i, W_i]``."""
        video = check_video(video, self.in_chans)
        feats = self._stages(video.transpose(0, 1))
        return [f.transpose(0, 1) for f in feats]

    def forward_head(self, last: torch.Tensor, per_step: bool = False) -> torch.Tensor:
        """Classification head on time-major ``[T, B, C, H, W]``: spatial mean → LIF →
        Linear → mean over T (official code; docs/design.md §2.7). ``per_step=True`` skips the
        mean and returns the per-frame logits ``[B, T, K]`` (whose mean over T is the default
        output), for the per-time-step loss (docs/design.md §7.4)."""
        x = self.head_lif(last.flatten(3).mean(3))  # [T, B, C]
        out = self.head(x)
        if self.head_kd is not None:
            out = (out + self.head_kd(x)) / 2
        return out.transpose(0, 1) if per_step else out.mean(0)

    def forward(self, video: torch.Tensor, per_step: bool = False) -> torch.Tensor:
        """``video [B, T, C, H, W]`` (or an image ``[B, C, H, W]`` = T 1) → logits ``[B, K]``
        (``per_step=True``: per-frame logits ``[B, T, K]``, see :meth:`forward_head`)."""
        video = check_video(video, self.in_chans)
        return self.forward_head(self._stages(video.transpose(0, 1))[-1], per_step)
