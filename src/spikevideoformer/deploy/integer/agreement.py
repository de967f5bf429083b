"""Float folded model vs integer network on the same clip (docs/integer.md, "Agreement").

``compare(model, net, clip)`` runs both and returns, per spiking layer, how many spikes are
identical (as counts: a ``k/D`` float spike is compared as ``k``), both models' logits and
their predictions: the class of a classifier; for a segmentation model the per-frame stride-4
logits ``[T, K, H/4, W/4]`` and the pixel labels ``[T, H, W]`` of the model's read-out (bilinear
resize to the input size, then argmax: :func:`segmentation_readout`, the same for both).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...layers.blocks import state_dict_name
from ...layers.inference_neuron import InferenceLIF
from ..fold import dense_repconvs, fold, is_folded
from .quantize import IntegerNetwork

__all__ = ["Agreement", "compare", "float_spikes", "segmentation_readout"]


@dataclass
class Agreement:
    """Per-layer ``(identical, total)`` spike counts, the two logits, the two predictions
    (a class; segmentation: labels ``[T, H, W]``) and the integer run."""

    layers: dict = field(default_factory=dict)
    float_logits: np.ndarray | None = None
    int_logits: np.ndarray | None = None
    result: object = None
    float_pred: np.ndarray | None = None
    int_pred: np.ndarray | None = None

    @property
    def identical(self) -> float:
        """Fraction of identical spikes over all spiking layers."""
        same = sum(s for s, _ in self.layers.values())
        total = sum(t for _, t in self.layers.values())
        return same / total if total else 1.0

    def per_layer(self) -> dict[str, float]:
        return {k: s / t if t else 1.0 for k, (s, t) in self.layers.items()}

    @property
    def same_prediction(self) -> bool:
        """Identical class (segmentation: identical label at every pixel)."""
        return bool(np.array_equal(self.float_pred, self.int_pred))

    @property
    def identical_predictions(self) -> float:
        """Fraction of identical predictions: 0 or 1 for a class, the pixel fraction for labels."""
        return float(np.mean(np.asarray(self.float_pred) == np.asarray(self.int_pred)))


def segmentation_readout(logits: torch.Tensor | np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``SegSpikeVideoFormer``'s read-out: stride-4 logits ``[T, K, h, w]`` → bilinear resize
    to ``size`` (``align_corners=False``) → argmax over K → labels ``[T, H, W]`` (int64)."""
    x = torch.as_tensor(logits)
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)
    return x.argmax(1).cpu().numpy()


def float_spikes(model: nn.Module, video: torch.Tensor, forward=None) -> tuple[torch.Tensor, dict]:
    """Logits (``forward(video)``, default ``model(video)``) and every ``InferenceLIF``'s output
    as integer counts, keyed by state_dict name."""
    rec, handles = {}, []
    for name, m in model.named_modules():
        if isinstance(m, InferenceLIF):
            key = state_dict_name(model, name)
            handles.append(m.register_forward_hook(
                lambda mod, i, o, key=key: rec.__setitem__(key, torch.round(o / mod.out_scale))))
    try:
        with torch.no_grad():
            y = (forward or model)(video)
    finally:
        for h in handles:
            h.remove()
    return y, rec


def compare(model: nn.Module, net: IntegerNetwork, clip: np.ndarray) -> Agreement:
    """Run the float folded ``model`` (each RepConv as its dense 3×3 conv, the integer
    network's layout) and ``net`` on ``clip uint8 [T, H, W, C]``; compare spikes and logits
    (a segmentation model: its stride-4 logits, ``forward_logits``) and predictions."""
    f = dense_repconvs(model) if is_folded(model) else fold(model, repconv="dense")
    f = f.eval()
    ref = next(f.parameters())
    seg = net.graph["output"].get("kind") == "segmentation"
    y, rec = float_spikes(f, net.float_input(clip).to(device=ref.device, dtype=ref.dtype),
                          f.forward_logits if seg else None)
    res = net.run(clip, record_spikes=True)
    out = Agreement(float_logits=y[0].double().cpu().numpy(), int_logits=res.logits, result=res)
    if seg:  # the same read-out for both: float32 logits as the model's forward, exact int ones
        out.float_pred = segmentation_readout(y[0], clip.shape[1:3])
        out.int_pred = segmentation_readout(res.logits, clip.shape[1:3])
    else:
        out.float_pred, out.int_pred = np.argmax(out.float_logits), np.argmax(res.logits)
    for name, s in res.spikes.items():
        if name not in rec:
            raise KeyError(f"integer layer {name} has no float counterpart")
        fs = rec[name].reshape(s.shape[0], -1).cpu().numpy()
        out.layers[name] = (int((fs == s.reshape(s.shape[0], -1)).sum()), int(s.size))
    return out
