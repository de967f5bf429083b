"""Forward-hook plumbing shared by the energy profiler and the purity check.

Nothing here changes a model: every observation comes from ``register_forward_hook`` /
``register_forward_pre_hook`` handles that :class:`Tracer` removes on exit.

Spike provenance: a tensor produced by a spiking neuron (``layers.LIF`` or the deployed
``deploy.InferenceLIF``) is remembered together with the value of one spike (``1/D`` for a
normalised Integer-LIF output, 1 for binary spikes or integer counts), so a layer fed by it
knows how to turn its input back into spike counts. Inputs of unknown origin are classified
by their values.

Structure comes from the model: stages from ``SpikeVideoFormer.stage_of`` (:func:`stage_resolver`),
the stem from its ``"stem"`` stage (:func:`stem_layers`), attention branches from the
``layers.AttentionBranch`` modules.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..layers.blocks import AttentionBranch
from ..layers.inference_neuron import InferenceLIF
from ..layers.neuron import LIF
from ..models.backbone import STAGES, SpikeVideoFormer

__all__ = ["Tracer", "neuron_unit", "model_spike_max", "spike_counts", "STAGES", "backbones",
           "stage_resolver", "stem_layers", "WEIGHT_LAYERS", "AttentionOperands"]

WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Linear)


def backbones(model: nn.Module) -> list[tuple[str, SpikeVideoFormer]]:
    """``(qualified name, backbone)`` of every SpikeVideoFormer in ``model`` (itself: name "")."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, SpikeVideoFormer)]


def stage_resolver(model: nn.Module) -> Callable[[str], str]:
    """``name → stage`` for module/parameter names of ``model``, read from its backbone(s).

    Names inside a backbone get its :meth:`SpikeVideoFormer.stage_of` (stem, stage1 … stage4,
    head); in a model that wraps a backbone (``backbone.…``), the wrapper's other modules are
    its task head, "head"; a model without a backbone has only "other".
    """
    found = backbones(model)

    def stage(name: str) -> str:
        for prefix, bb in found:
            if not prefix:
                return bb.stage_of(name)
            if name == prefix or name.startswith(prefix + "."):
                return bb.stage_of(name[len(prefix) + 1:])
        return "head" if found else "other"
    return stage


def stem_layers(model: nn.Module) -> list[str]:
    """Qualified names of the weight layers of each backbone's stem (direct pixel encoding)."""
    out = []
    for prefix, bb in backbones(model):
        for name, mod in bb.stage_modules()["stem"].items():
            base = f"{prefix}.{name}" if prefix else name
            out += [f"{base}.{n}" if n else base for n, m in mod.named_modules()
                    if isinstance(m, WEIGHT_LAYERS)]
    return out


def _is_neuron(m: nn.Module) -> bool:
    return isinstance(m, (LIF, InferenceLIF))


def neuron_unit(m: nn.Module) -> float | None:
    """Value of one spike in a neuron's output (``1/D`` normalised, 1 integer), None if not a neuron."""
    if isinstance(m, InferenceLIF):
        return m.out_scale
    if isinstance(m, LIF):
        return 1.0 / m.spike_max
    return None


def model_spike_max(model: nn.Module) -> int | None:
    """Largest ``spike_max`` of the model's spiking neurons; None if it has none (an ANN)."""
    ds = [m.spike_max for m in model.modules() if _is_neuron(m)]
    return max(ds) if ds else None


def spike_counts(x: torch.Tensor, unit: float, max_count: float | None = None,
                 tol: float = 1e-4) -> torch.Tensor | None:
    """``x / unit`` rounded if it is a tensor of non-negative integers (≤ ``max_count``), else None."""
    c = x.detach().double() / unit
    r = torch.round(c)
    if c.numel() == 0:
        return r
    if bool((c - r).abs().max() > tol) or bool(r.min() < 0):
        return None
    if max_count is not None and bool(r.max() > max_count):
        return None
    return r


class AttentionOperands:
    """Q, K, V (``[T, B, C, H, W]``) of one attention branch, with their spike units (None = real).

    ``name`` is the branch's module path (``….attn``, or ``….attn.temporal`` for the second
    branch of the factorized design), ``module`` the :class:`~spikevideoformer.layers.blocks.AttentionBranch`.
    """

    def __init__(self, name: str, module: AttentionBranch, q: torch.Tensor, k: torch.Tensor,
                 v: torch.Tensor, units: tuple[float | None, float | None, float | None]) -> None:
        self.name, self.module, self.grouping = name, module, module.grouping
        self.q, self.k, self.v, self.units = q, k, v, units


class Tracer:
    """Context manager that installs the hooks and forwards observations to callbacks.

    ``on_layer(name, module, x, out, unit)``: every conv/linear call, ``unit`` the spike unit of
    ``x`` if it came from a neuron (else None). ``on_neuron(name, module, out, unit)``: every
    spiking neuron call. ``on_attention(AttentionOperands)``: every attention core, when its
    V operand has been computed (the core runs right after).
    """

    def __init__(self, model: nn.Module, on_layer: Callable | None = None,
                 on_neuron: Callable | None = None, on_attention: Callable | None = None) -> None:
        self.model = model
        self.on_layer, self.on_neuron, self.on_attention = on_layer, on_neuron, on_attention
        self._handles: list = []
        self._spikes: dict[int, tuple[torch.Tensor, float]] = {}  # storage ptr → (tensor, unit)
        self._shapes: dict[int, torch.Size] = {}                 # branch id → input shape
        self._qkv: dict[int, dict[str, tuple[torch.Tensor, float | None]]] = {}

    # ------------------------------------------------------------------ provenance
    def unit_of(self, x: torch.Tensor) -> float | None:
        if x.numel() == 0:
            return None
        hit = self._spikes.get(x.untyped_storage().data_ptr())
        return None if hit is None else hit[1]

    def _remember(self, out: torch.Tensor, unit: float) -> None:
        # keep a reference so the storage cannot be reused by a real-valued tensor meanwhile
        self._spikes[out.untyped_storage().data_ptr()] = (out, unit)

    # ------------------------------------------------------------------ hooks
    def _layer_hook(self, name: str):
        def hook(mod, inputs, out):
            x = inputs[0]
            if self.on_layer is not None:
                self.on_layer(name, mod, x, out, self.unit_of(x))
        return hook

    def _neuron_hook(self, name: str):
        def hook(mod, inputs, out):
            unit = neuron_unit(mod)
            self._remember(out, unit)
            if self.on_neuron is not None:
                self.on_neuron(name, mod, out, unit)
        return hook

    def _attn_pre_hook(self, mod, inputs):
        self._shapes[id(mod)] = inputs[0].shape

    def _operand_hook(self, name: str, branch: AttentionBranch, which: str, spiking: bool):
        def hook(mod, inputs, out):
            shape = self._shapes[id(branch)]
            T, B = shape[0], shape[1]
            t = out if out.dim() == 5 else out.reshape(T, B, *out.shape[1:])  # [T, B, C, H, W]
            unit = neuron_unit(mod) if spiking else None
            slot = self._qkv.setdefault(id(branch), {})
            slot[which] = (t, unit)
            if which == "v" and self.on_attention is not None:
                ops = AttentionOperands(name, branch, slot["q"][0], slot["k"][0], t,
                                        (slot["q"][1], slot["k"][1], unit))
                self._qkv.pop(id(branch), None)
                self.on_attention(ops)
        return hook

    def __enter__(self) -> "Tracer":
        reg = self._handles.append
        for name, m in self.model.named_modules():
            if isinstance(m, WEIGHT_LAYERS):
                reg(m.register_forward_hook(self._layer_hook(name)))
            elif _is_neuron(m):
                reg(m.register_forward_hook(self._neuron_hook(name)))
        for name, br in self.model.named_modules():
            if not isinstance(br, AttentionBranch):
                continue
            reg(br.register_forward_pre_hook(self._attn_pre_hook))
            for which, conv, lif in (("q", br.q_conv, br.q_lif), ("k", br.k_conv, br.k_lif),
                                     ("v", br.v_conv, br.v_lif)):
                src = lif if lif is not None else conv
                reg(src.register_forward_hook(
                    self._operand_hook(name, br, which, spiking=lif is not None)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._spikes.clear()
        self._shapes.clear()
        self._qkv.clear()
