"""Per-stage gradient norms of a backbone: a trainability check at initialisation.

Used by ``benchmarks/grad_scale.py`` to show why some ablation variants cannot train at small
scale (e.g. dot-product SDSA back-propagates gradients of ~1e32 to stage 1 at init, while
Hamming attention keeps them O(10); docs/ablations.md).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["STAGES", "stage_of", "stage_grad_norms"]

STAGES = ("stage1", "stage2", "stage3", "stage4", "head")
_PREFIXES = (("downsample1", 1), ("ConvBlock1", 1), ("downsample2", 2), ("ConvBlock2", 2),
             ("downsample3", 3), ("block3", 3), ("downsample4", 4), ("block4", 4))


def stage_of(name: str) -> str:
    """Stage of an official parameter name (docs/design.md §2.2): ``downsample1_*`` / ``ConvBlock1_*`` are
    stage 1, ..., ``block4.*`` stage 4; anything else (classifier, norms after stage 4) "head"."""
    for prefix, stage in _PREFIXES:
        if name.startswith(prefix):
            return f"stage{stage}"
    return "head"


def stage_grad_norms(model: torch.nn.Module, video: torch.Tensor, target: torch.Tensor,
                     train_mode: bool = True) -> dict[str, float]:
    """One forward/backward of cross-entropy on ``(video, target)``; returns the L2 norm of the
    gradient of each stage's parameters (accumulated in float64, so no overflow to inf)."""
    model.train(train_mode)
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(video), target).backward()
    sq = dict.fromkeys(STAGES, 0.0)
    for name, p in model.named_parameters():
        if p.grad is not None:
            sq[stage_of(name)] += float(p.grad.double().pow(2).sum())
    model.zero_grad(set_to_none=True)
    return {s: math.sqrt(v) for s, v in sq.items()}
