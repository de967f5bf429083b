"""Opt-in compact storage of binary spikes saved for backward (``compact_spike_storage``)."""
from __future__ import annotations

import weakref

import torch

__all__ = ["compact_spike_storage"]

# storage pointer -> (weakref to the spikes, their version, serial number of the registration)
_SPIKE_REG: dict = {"depth": 0, "live": {}, "serial": 0}


def _register_spikes(s: torch.Tensor) -> None:
    live = _SPIKE_REG["live"]
    if len(live) > 4096:  # drop entries whose tensors are gone
        for k in [k for k, ent in live.items() if ent[0]() is None]:
            del live[k]
    _SPIKE_REG["serial"] += 1
    live[s.untyped_storage().data_ptr()] = (weakref.ref(s), s._version, _SPIKE_REG["serial"])


def _unpack_spikes(obj):
    if isinstance(obj, _PackedSpikes):
        # bool -> uint8 view -> float: the same 0/1 values, ~3x faster than bool -> float on CPU
        return obj.bits.view(torch.uint8).to(obj.dtype)
    return obj


class _PackedSpikes:
    __slots__ = ("bits", "dtype")

    def __init__(self, bits: torch.Tensor, dtype: torch.dtype) -> None:
        self.bits, self.dtype = bits, dtype


class compact_spike_storage:
    """Context manager: binary LIF spikes that *other* layers save for backward (the input of
    every convolution / linear layer after a neuron) are kept as ``torch.bool`` instead of
    float — 4x less memory for those activations, bit-exact gradients, ~no time cost::

        with compact_spike_storage():
            loss = criterion(model(video), target)
        loss.backward()

    Only tensors that are (views of) unmodified spike outputs of :func:`lif_multistep` with
    ``spike_max = 1`` are packed; everything else is saved as usual. Built on
    ``torch.autograd.graph.saved_tensors_hooks``; the forward pass must run inside the block,
    backward may run outside it. ``compact_spike_storage(False)`` does nothing (a switch for
    callers such as the Trainer's ``optim.compact_spikes``).
    """

    def __init__(self, enabled: bool = True) -> None:
        self._cache: dict = {}
        self._hooks = None
        self.enabled = bool(enabled)

    def _pack(self, t: torch.Tensor):
        live = _SPIKE_REG["live"]
        if not live or not t.is_floating_point():
            return t
        try:
            ptr = t.untyped_storage().data_ptr()
        except (RuntimeError, NotImplementedError):
            return t
        ent = live.get(ptr)
        if ent is None:
            return t
        base = ent[0]()
        if base is None or base._version != ent[1] or t._version != ent[1] or t.dtype != base.dtype:
            return t
        # the serial tells apart spikes that reuse the memory of freed ones
        key = (ent[2], t.storage_offset(), tuple(t.shape), tuple(t.stride()))
        packed = self._cache.get(key)
        if packed is None:
            # spikes are exactly 0 or 1: a cast is the same as ``!= 0`` and ~4x faster on CPU
            packed = _PackedSpikes(t.detach().to(torch.bool), t.dtype)
            self._cache[key] = packed
        return packed

    def __enter__(self) -> "compact_spike_storage":
        if not self.enabled:
            return self
        _SPIKE_REG["depth"] += 1
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, _unpack_spikes)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if not self.enabled:
            return
        self._hooks.__exit__(*exc)
        self._hooks = None
        self._cache.clear()
        _SPIKE_REG["depth"] -= 1
        if not _SPIKE_REG["depth"]:
            _SPIKE_REG["live"].clear()
