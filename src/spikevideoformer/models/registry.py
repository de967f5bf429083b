"""Model registry: ``create_model(name, **overrides)`` and ``list_models()`` (timm style).

Sizes follow docs/design.md §2.6: ``embed_dim = (c0, c1, c2, c3)``, 8 heads, MLP ratio 4.
"""
from __future__ import annotations

from typing import Any

from ..layers.neuron import NeuronParams
from .backbone import SpikeVideoFormer

__all__ = ["MODEL_SIZES", "list_models", "create_model", "make_neuron_spec"]

MODEL_SIZES: dict[str, tuple[int, int, int, int]] = {
    "svf_tiny": (16, 32, 64, 80),
    "svf_15m": (64, 128, 256, 360),
    "svf_31m": (96, 192, 384, 480),
    "svf_55m": (128, 256, 512, 640),
}


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return list(MODEL_SIZES)


def make_neuron_spec(neuron: str | dict | NeuronParams = "lif", spike_max: int | None = None,
                     temporal_state: bool | None = None) -> NeuronParams:
    """:class:`NeuronParams` from ``"lif"``/``"relu"``, a dict of its fields, or params."""
    return NeuronParams.build(neuron, spike_max=spike_max, temporal_state=temporal_state)


def create_model(name: str, *, num_classes: int = 1000, attention: str = "hamming",
                 design: str = "joint", embed_dim=None, in_chans: int = 3,
                 neuron: str | dict | NeuronParams = "lif", spike_max: int | None = None,
                 temporal_state: bool | None = None, **kw: Any) -> SpikeVideoFormer:
    """Build a registered SpikeVideoFormer.

    ``create_model("svf_15m", num_classes=400, attention="hamming", design="joint")``.
    ``neuron="relu"`` with ``attention="softmax"`` gives the ANN counterpart; ``spike_max=4``
    the Integer-LIF backbone; ``temporal_state=False`` resets membranes every frame.
    Other keyword arguments go to :class:`SpikeVideoFormer` (heads, mlp_ratio, depths, scale, kd).
    """
    if name not in MODEL_SIZES:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(MODEL_SIZES)}")
    spec = make_neuron_spec(neuron, spike_max, temporal_state)
    return SpikeVideoFormer(
        embed_dim=MODEL_SIZES[name] if embed_dim is None else embed_dim, num_classes=num_classes,
        in_chans=in_chans, attention=attention, design=design, neuron=spec, **kw,
    )
