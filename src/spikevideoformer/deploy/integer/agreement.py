"""Float folded model vs integer network on the same clip (docs/integer.md, "Agreement").

``compare(model, net, clip)`` runs both and returns, per spiking layer, how many spikes are
identical (as counts: a ``k/D`` float spike is compared as ``k``), and both models' logits.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ...layers.blocks import state_dict_name
from ...layers.inference_neuron import InferenceLIF
from ..fold import dense_repconvs, fold, is_folded
from .quantize import IntegerNetwork

__all__ = ["Agreement", "compare", "float_spikes"]


@dataclass
class Agreement:
    """Per-layer ``(identical, total)`` spike counts, the two logits and the integer run."""

    layers: dict = field(default_factory=dict)
    float_logits: np.ndarray | None = None
    int_logits: np.ndarray | None = None
    result: object = None

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
        return int(np.argmax(self.float_logits)) == int(np.argmax(self.int_logits))


def float_spikes(model: nn.Module, video: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Logits and every ``InferenceLIF``'s output as integer counts, keyed by state_dict name."""
    rec, handles = {}, []
    for name, m in model.named_modules():
        if isinstance(m, InferenceLIF):
            key = state_dict_name(model, name)
            handles.append(m.register_forward_hook(
                lambda mod, i, o, key=key: rec.__setitem__(key, torch.round(o / mod.out_scale))))
    try:
        with torch.no_grad():
            y = model(video)
    finally:
        for h in handles:
            h.remove()
    return y, rec


def compare(model: nn.Module, net: IntegerNetwork, clip: np.ndarray) -> Agreement:
    """Run the float folded ``model`` (each RepConv as its dense 3×3 conv, the integer
    network's layout) and ``net`` on ``clip uint8 [T, H, W, C]``; compare spikes and logits."""
    f = dense_repconvs(model) if is_folded(model) else fold(model, repconv="dense")
    f = f.eval()
    ref = next(f.parameters())
    y, rec = float_spikes(f, net.float_input(clip).to(device=ref.device, dtype=ref.dtype))
    res = net.run(clip, record_spikes=True)
    out = Agreement(float_logits=y[0].double().cpu().numpy(), int_logits=res.logits, result=res)
    for name, s in res.spikes.items():
        if name not in rec:
            raise KeyError(f"integer layer {name} has no float counterpart")
        fs = rec[name].reshape(s.shape[0], -1).cpu().numpy()
        out.layers[name] = (int((fs == s.reshape(s.shape[0], -1)).sum()), int(s.size))
    return out
