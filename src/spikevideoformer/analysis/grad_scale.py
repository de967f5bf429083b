"""Per-stage gradient norms of a backbone: a trainability check at initialisation.

Used by ``benchmarks/grad_scale.py`` to show why some ablation variants cannot train at small
scale (e.g. dot-product SDSA back-propagates gradients of ~1e32 to stage 1 at init, while
Hamming attention keeps them O(10); docs/ablations.md).

Stages come from the model (``SpikeVideoFormer.stage_of``), with one explicit difference in
how they are reported here: the stem (``downsample1_1``) is summed into "stage1", as in
docs/img/grad_scale.csv since it was first written, and parameters outside any backbone
count as "head" (:data:`REPORTED_AS`).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._trace import stage_resolver

__all__ = ["STAGES", "REPORTED_AS", "stage_of", "stage_grad_norms"]

STAGES = ("stage1", "stage2", "stage3", "stage4", "head")
REPORTED_AS = {"stem": "stage1", "other": "head"}  # model stage → reported stage


def stage_of(model: torch.nn.Module, name: str) -> str:
    """Reported stage of parameter ``name`` of ``model``: the model's stage (docs/design.md
    §2.2) mapped by :data:`REPORTED_AS`."""
    stage = stage_resolver(model)(name)
    return REPORTED_AS.get(stage, stage)


def stage_grad_norms(model: torch.nn.Module, video: torch.Tensor, target: torch.Tensor,
                     train_mode: bool = True) -> dict[str, float]:
    """One forward/backward of cross-entropy on ``(video, target)``; returns the L2 norm of the
    gradient of each stage's parameters (accumulated in float64, so no overflow to inf)."""
    model.train(train_mode)
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(video), target).backward()
    resolve = stage_resolver(model)
    sq = dict.fromkeys(STAGES, 0.0)
    for name, p in model.named_parameters():
        if p.grad is not None:
            stage = resolve(name)
            sq[REPORTED_AS.get(stage, stage)] += float(p.grad.double().pow(2).sum())
    model.zero_grad(set_to_none=True)
    return {s: math.sqrt(v) for s, v in sq.items()}
