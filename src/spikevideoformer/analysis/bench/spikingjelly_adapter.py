"""SpikingJelly as the comparison point: availability, and its LIF in place of ours."""
from __future__ import annotations

import logging

import torch
from torch import nn

from ...layers.neuron import LIF, LIFParams

__all__ = ["spikingjelly_available", "spikingjelly_version", "SpikingJellyLIF", "swap_to_spikingjelly"]


def spikingjelly_version() -> str | None:
    """The installed SpikingJelly's version, or ``None`` if it cannot be imported."""
    try:
        import spikingjelly
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return None
    try:
        from importlib.metadata import version
        return version("spikingjelly")
    except Exception:  # noqa: BLE001 - e.g. a copied package without metadata
        return getattr(spikingjelly, "__version__", "installed")


def spikingjelly_available() -> bool:
    """True if SpikingJelly's activation-based neurons can be imported."""
    # SpikingJelly registers Triton ops at import; without Triton torch logs a warning per op
    logging.getLogger("torch._library.triton").setLevel(logging.ERROR)
    try:
        from spikingjelly.activation_based import functional, neuron  # noqa: F401
        return True
    except Exception:  # noqa: BLE001
        return False


class SpikingJellyLIF(nn.Module):
    """SpikingJelly's multi-step ``LIFNode`` with the parameters of one of our :class:`LIF`
    modules, reset before and after every call (so no state survives a call, like ours)."""

    def __init__(self, lif: LIF) -> None:
        super().__init__()
        from spikingjelly.activation_based import neuron, surrogate
        p: LIFParams = lif.params
        if p.spike_max != 1:
            raise ValueError("SpikingJelly's LIFNode has no Integer-LIF (spike_max > 1)")
        self.temporal_state = lif.temporal_state
        self.node = neuron.LIFNode(
            tau=float(p.tau), decay_input=p.decay_input, v_threshold=float(p.v_th),
            v_reset=None if p.soft_reset else float(p.v_reset),
            surrogate_function=surrogate.Sigmoid(alpha=float(p.alpha)),
            detach_reset=p.detach_reset, step_mode="m")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.node.reset()
        if not self.temporal_state:
            y = self.node(x.reshape(1, -1, *x.shape[2:])).reshape(x.shape)
        else:
            y = self.node(x)
        self.node.reset()
        return y


def swap_to_spikingjelly(model: nn.Module) -> int:
    """Replace every :class:`LIF` inside ``model`` by a :class:`SpikingJellyLIF` (in place);
    returns how many were swapped."""
    n = 0
    for name, child in list(model.named_children()):
        if isinstance(child, LIF):
            setattr(model, name, SpikingJellyLIF(child))
            n += 1
        else:
            n += swap_to_spikingjelly(child)
    return n
