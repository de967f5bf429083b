"""The graph builder shared by the backbone walk (``quantize.py``) and the segmentation decoder
(``decoder.py``): per-layer power-of-two weight scales, integer convs and neurons
(docs/integer.md, "Quantisation").

``_Builder`` holds the model being quantised (for layer names: state_dict names, so the integer
ops and the float model's neurons share keys), the op list and the integer tensors. Stages
come from the model: a :class:`SpikeVideoFormer`'s ``stage_of``; in a model that wraps one
(``backbone.…``, e.g. under a segmentation decoder) the wrapper's own layers are "head", as in
``analysis.profile``.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ...layers.blocks import state_dict_name
from ...layers.inference_neuron import InferenceLIF
from ...models.backbone import SpikeVideoFormer
from .fixed_point import decay_constant

__all__ = ["_Builder", "_np"]


def _np(t: torch.Tensor | float, n: int | None = None) -> np.ndarray:
    a = t.detach().double().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t, float)
    a = a.reshape(-1)
    return np.broadcast_to(a, (n,)).copy() if n is not None and a.size in (1, n) else a


def _stage_resolver(model: nn.Module):
    """``module path → stage``: the backbone's ``stage_of``; a wrapper's own layers are "head"."""
    if isinstance(model, SpikeVideoFormer):
        return model.stage_of
    for prefix, mod in model.named_children():
        if isinstance(mod, SpikeVideoFormer):
            return lambda p: mod.stage_of(p[len(prefix) + 1:]) if p.startswith(prefix + ".") else "head"
    raise TypeError(f"{type(model).__name__} holds no SpikeVideoFormer backbone")


class _Builder:
    def __init__(self, model: nn.Module, bits: int, frac: int, size: tuple[int, int]) -> None:
        if not 2 <= bits <= 24:
            raise ValueError(f"weight_bits must be in 2..24, got {bits}")
        if not 0 <= frac <= 24:
            raise ValueError(f"membrane_frac_bits must be in 0..24, got {frac}")
        self.model, self.bits, self.frac, self.size = model, bits, frac, size
        self.stage_of = _stage_resolver(model)
        self.qmax = 2 ** (bits - 1) - 1
        self.wdtype = np.int8 if bits <= 8 else np.int16 if bits <= 16 else np.int32
        self.path = {id(m): n for n, m in model.named_modules()}
        self.ops: list[dict] = []
        self.tensors: dict[str, np.ndarray] = {}
        self.scales: dict[str, list] = {}
        self.kept: list[nn.Module] = []

    def keep(self, mod: nn.Module, path: str) -> nn.Module:
        """Register a module made here (a merged head, a conv with its BN folded in) under the
        path of the layer it stands for, so its ops carry that layer's name."""
        self.kept.append(mod)  # alive while the builder is: ids stay unique
        self.path[id(mod)] = path
        return mod

    # ------------------------------------------------------------------ helpers
    def name(self, mod: nn.Module) -> str:
        return state_dict_name(self.model, self.path[id(mod)])

    def emit(self, op: str, name: str, inputs: list[str], attrs: dict | None = None,
             params: dict | None = None, out: str | None = None) -> str:
        keys = {}
        for role, arr in (params or {}).items():
            keys[role] = f"{name}.{role}"
            self.tensors[keys[role]] = arr
        out = out or name
        self.ops.append({"name": name, "op": op, "inputs": inputs, "output": out,
                         "attrs": attrs or {}, "params": keys})
        return out

    def scale_of(self, weights: list[np.ndarray]) -> np.ndarray:
        """Per-output-channel power-of-two scale ``2^ceil(log2(max|w|/q_max))``, the coarsest
        that any ``w_eff [C_out, ...]`` in ``weights`` needs (all-zero rows: 1)."""
        m = np.max([np.abs(w).reshape(w.shape[0], -1).max(1) for w in weights], axis=0)
        m = np.where(m > 0, m, self.qmax)
        return 2.0 ** np.ceil(np.log2(m / self.qmax))

    @staticmethod
    def weight(mod: nn.Module) -> np.ndarray:
        """``[C_out, C_in/groups, k, k]``: a Conv1d (kernel 1) or Linear as a 1×1 conv."""
        w = mod.weight.detach().double().cpu().numpy()
        if isinstance(mod, nn.Linear):
            return w[:, :, None, None]
        if isinstance(mod, nn.Conv1d):
            if w.shape[2] != 1:
                raise ValueError(f"only kernel-1 Conv1d layers are supported, got {tuple(w.shape)}")
            return w[:, :, :, None]
        return w

    def w_eff(self, mod: nn.Module, unit: np.ndarray | float) -> np.ndarray:
        """Weights in units of the integer input (``unit``: its real value, per input channel)."""
        w = self.weight(mod)
        u = np.asarray(unit, dtype=np.float64).reshape(-1)
        if u.size == 1:
            return w * u[0]
        shape = (-1, 1, 1, 1) if w.shape[1] == 1 and w.shape[0] == u.size else (1, -1, 1, 1)
        return w * u.reshape(shape)

    # ------------------------------------------------------------------ ops
    def conv(self, mod: nn.Module, x: str, unit, stream: np.ndarray | None = None,
             real: bool = False) -> tuple[str, np.ndarray]:
        """Integer conv of input ``x`` (real value ``unit`` per integer); its own power-of-two
        scale ``σ``; writing into a residual ``stream`` (scale ``σ_s ≥ σ``), the accumulator
        is shifted right by ``log2(σ_s/σ)`` (rounding) before the bias. Returns (output, scale)."""
        name = self.name(mod)
        w = self.w_eff(mod, unit)
        sigma = self.scale_of([w])
        q = np.clip(np.rint(w / sigma.reshape(-1, 1, 1, 1)), -self.qmax, self.qmax).astype(self.wdtype)
        params = {"weight": q}
        if stream is not None:
            shift = np.rint(np.log2(stream / sigma)).astype(np.int64)
            if shift.min() < 0:
                raise AssertionError(f"{name}: stream scale finer than the layer's")
            if shift.any():
                params["shift"] = shift
            sigma = stream
        if getattr(mod, "bias", None) is not None:
            params["bias"] = np.rint(_np(mod.bias) / sigma).astype(np.int64)
        if isinstance(mod, nn.Linear):
            kind, k, stride, pad, groups = "linear", 1, 1, 0, 1
        else:
            k, stride, pad, groups = mod.kernel_size[0], mod.stride[0], mod.padding[0], mod.groups
            kind = "dwconv" if groups > 1 and groups == mod.in_channels else "conv"
        attrs = {"kind": kind, "stride": stride, "padding": pad, "groups": groups,
                 "input": "real" if real else "spike", "stage": self.stage_of(self.path[id(mod)])}
        self.scales[name] = sigma.tolist()
        return self.emit("conv", name, [x], attrs, params), sigma

    def lif(self, mod: InferenceLIF, x: str, sigma: np.ndarray) -> tuple[str, float]:
        """Neuron on integer input of real unit ``sigma`` (per channel); returns its output and
        the real value of one of its spikes (``1/D`` normalised, else 1)."""
        if not isinstance(mod, InferenceLIF):
            raise TypeError(f"expected a folded neuron (InferenceLIF), got {type(mod).__name__}: "
                            f"pass a model returned by deploy.fold")
        p = mod.params
        if p.v_reset != 0.0:
            raise ValueError(f"{self.path[id(mod)]}: the integer engine needs v_reset = 0, got {p.v_reset}")
        c = sigma.size
        mu = sigma / 2.0 ** self.frac                         # real value of one membrane unit
        sign = _np(mod.sign, c) if mod.sign is not None else np.ones(c)
        gain = (sign * 2 ** self.frac).astype(np.int64)
        params = {"gain": gain}
        if mod.bias is not None:
            params["bias"] = np.rint(_np(mod.bias, c) / mu).astype(np.int64)
        v_th = _np(mod.v_th, c)
        if p.spike_max == 1:
            params["theta"] = np.ceil(v_th / mu - 1e-9).astype(np.int64)
            if p.soft_reset:
                params["reset_sub"] = np.rint(v_th / mu).astype(np.int64)
        else:
            unit = _np(mod.unit, c) if mod.unit is not None else np.ones(c)
            params["unit"] = np.maximum(np.rint(unit / mu), 1).astype(np.int64)
        for k in params:  # per-channel arrays broadcast against [T][C, H, W]
            params[k] = params[k].reshape(-1, 1, 1)
        attrs = {"spike_max": int(p.spike_max), "tau": list(decay_constant(p.tau)),
                 "decay_input": p.decay_input, "soft_reset": p.soft_reset,
                 "temporal_state": p.temporal_state, "stage": self.stage_of(self.path[id(mod)])}
        name = self.path[id(mod)]
        self.scales[name] = mu.tolist()
        return self.emit("lif", state_dict_name(self.model, name), [x], attrs, params), mod.out_scale

    def add(self, a: str, b: str, name: str) -> str:
        return self.emit("add", name, [a, b], out=name)
