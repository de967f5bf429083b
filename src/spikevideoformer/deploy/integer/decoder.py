"""The spike-driven segmentation decoder in integers (docs/integer.md, "Segmentation decoder").

The decoder declares its own dataflow (``SpikeSegHead.deploy_layout()``), so this file needs
nothing from the task package (deploy sits below tasks). Per frame, at stride 4::

    stage i:   LIF(x_i) → 1×1 conv, BN folded in (w·γ/s, bias β - μ·γ/s) → nearest resize
    fuse:      m = Σ_i lateral_i                  one integer stream, per-channel scale σ_m
               y = m + 3×3 conv(LIF(m)), BN folded, shifted into σ_m (residual=False: y alone)
    classify:  acc = 1×1 conv(LIF(y)) + b         per-class scale σ_k, one frame at a time

``σ_m`` is the coarsest scale any writer of the stream needs (the four lateral convs and the
fuse conv), as for a backbone stage's residual stream: a finer writer shifts its accumulator
right into it, and every bias is an integer in ``σ_m``. The nearest resize copies integers
(its row and column index maps, computed with ``F.interpolate`` itself, are in the graph) and
the sum and the shortcut add integers, so after its neurons the decoder is addition-only: its
three convs all read spike counts. The output is the stride-4 logits ``[T, K, H/4, W/4] =
acc · σ_k``; the bilinear resize to ``H × W`` that ``SegSpikeVideoFormer.forward`` applies is
the read-out (``agreement.segmentation_readout``), outside the integer network.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...layers.fuse import fuse_conv_bn
from ...models.backbone import SpikeVideoFormer
from .builder import _Builder

__all__ = ["decoder_layout", "build_decoder", "nearest_index"]


def decoder_layout(model: nn.Module) -> tuple[SpikeVideoFormer, dict] | None:
    """``(backbone, head.deploy_layout())`` for a model made of a SpikeVideoFormer ``backbone``
    and a ``head`` that declares its dataflow (the segmentation model); None otherwise."""
    backbone, head = getattr(model, "backbone", None), getattr(model, "head", None)
    declare = getattr(head, "deploy_layout", None)
    if isinstance(backbone, SpikeVideoFormer) and callable(declare):
        return backbone, declare()
    return None


def nearest_index(n_in: int, n_out: int) -> np.ndarray:
    """Source index of each of ``n_out`` positions under ``F.interpolate(mode="nearest")`` from
    ``n_in`` (asked of torch itself, so the copy matches the float model's resize)."""
    src = torch.arange(n_in, dtype=torch.float32).view(1, 1, n_in, 1)
    idx = F.interpolate(src, size=(n_out, 1), mode="nearest").view(-1)
    return idx.round().to(torch.int64).numpy()


def _folded(b: _Builder, conv: nn.Module, bn: nn.Module | None) -> nn.Module:
    """``bn(conv(·))`` as one conv with bias, named as ``conv`` in the graph."""
    fused = fuse_conv_bn(conv, bn)
    return conv if fused is conv else b.keep(fused, b.path[id(conv)])


def build_decoder(b: _Builder, layout: dict, feats: list[tuple[str, np.ndarray, tuple]]) -> dict:
    """Emit the decoder's ops after the backbone's; ``feats`` the four stage outputs as
    ``(stream tensor, scale σ [C], (H, W))``. Returns the graph's ``output`` entry."""
    if layout["upsample"] != "nearest":
        raise ValueError(f"the integer engine resizes the lateral features by copying (nearest); "
                         f"this decoder uses {layout['upsample']!r} (build it with upsample='nearest')")
    lateral = [(lif, _folded(b, conv, bn)) for lif, conv, bn in layout["lateral"]]
    if len(lateral) != len(feats):
        raise ValueError(f"the decoder has {len(lateral)} lateral branches for {len(feats)} stages")
    fuse_lif, fuse_conv, fuse_bn = layout["fuse"]
    fuse_conv = _folded(b, fuse_conv, fuse_bn)
    cls_lif, classifier = layout["classify"]
    residual = bool(layout["residual"])

    writers = [b.w_eff(conv, lif.out_scale) for lif, conv in lateral]
    if residual:
        writers.append(b.w_eff(fuse_conv, fuse_lif.out_scale))
    sigma = b.scale_of(writers)                    # the fused stream's per-channel scale
    size = feats[0][2]                             # stride 4: the first stage's size
    m = None
    for (lif, conv), (x, sx, sz) in zip(lateral, feats):
        s, u = b.lif(lif, x, sx)
        y, _ = b.conv(conv, s, u, sigma)           # at the stage's own resolution
        if tuple(sz) != tuple(size):
            y = b.emit("upsample", f"{b.name(conv)}.upsample", [y],
                       {"mode": "nearest", "size": list(size), "stage": "head"},
                       {"rows": nearest_index(sz[0], size[0]), "cols": nearest_index(sz[1], size[1])})
        m = y if m is None else b.add(m, y, f"{b.name(conv)}.sum")
    s, u = b.lif(fuse_lif, m, sigma)
    if residual:
        y, _ = b.conv(fuse_conv, s, u, sigma)
        y, sy = b.add(m, y, f"{b.name(fuse_conv)}.residual"), sigma
    else:
        y, sy = b.conv(fuse_conv, s, u)
    s, u = b.lif(cls_lif, y, sy)
    acc, sk = b.conv(classifier, s, u)
    return {"tensor": acc, "kind": "segmentation", "scale": sk.tolist(),
            "classes": int(sk.size), "size": [int(n) for n in size],
            "note": "per-frame stride-4 logits [T, K, h, w] = integers * scale[k]; the model's "
                    "read-out resizes them bilinearly (align_corners=False) to the input size"}
