"""Inference folding: re-parameterise a trained SpikeVideoFormer into its deployed form (docs/design.md §6).

``fold(model)`` returns an eval-mode deep copy in which

* every block folds itself (its ``fuse()``, declared in ``layers.blocks``): each ``RepConv``
  (with the ``BatchNorm2d`` that follows it) becomes, with ``repconv="auto"`` (default), the
  form with fewer MACs: a ``FusedRepConv`` (1×1 with the padded BN folded in and
  ``padding=1`` → depth-wise 3×3 → 1×1 with the BNs folded in; 2·C² + 9·C MACs per position)
  or one zero-padded 3×3 ``Conv2d`` with bias (``RepConv.to_conv``, 9·C²; derivations in
  ``layers/repconv.py``); ``repconv="dense"`` always gives the 3×3 conv (the form the energy
  model and the spike-driven check see), ``"factorised"`` always the FusedRepConv. Each
  conv/linear absorbs the ``BatchNorm`` that follows it (``layers.fuse.fuse_conv_bn``); a
  RepConv outside the blocks is folded too;
* the attention scale and ``attn_bn`` in front of an attention LIF become that LIF's
  per-channel threshold, plus a constant per-channel input bias and a per-channel sign
  (±1, so the attention output is only added or subtracted) — see :class:`InferenceLIF`
  and ``AttentionBranch.fuse_scale``;
* every LIF becomes an :class:`InferenceLIF`: the same equations as
  ``layers.neuron.LIFFunction`` written as a plain loop over T (no custom autograd Function),
  so ``torch.export`` can trace it (the exported graph unrolls the loop for a fixed T);
* with ``integer_spikes=True`` an Integer-LIF (``spike_max = D > 1``) that feeds only
  convolutions/linears emits integer counts ``0..D`` and the ``1/D`` moves into the weights
  of those layers, so they see integers (k additions for a spike of value k); which layers a
  neuron feeds, each block declares (its ``spike_consumers()``).

Exactness is mathematical, not bit-for-bit: the folded graph rounds differently, so a LIF
whose membrane lands within float rounding of its threshold can flip. Folds that are exact in
floating point are used where they exist (the SDSA scale 1/8 and the Integer-LIF ``1/D`` for
power-of-two D are powers of two, so those moves are bit-exact). All folded weights are
computed in float64 and cast to the model's dtype.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..layers.blocks import AttentionBranch
from ..layers.fuse import bn_affine, fuse_conv_bn
from ..layers.inference_neuron import InferenceLIF, lif_inference
from ..layers.neuron import LIF
from ..layers.repconv import REPCONV_FOLDS, FusedRepConv, RepConv, entry_layer, fuse_repconv_bn

__all__ = [
    "fold", "is_folded", "InferenceLIF", "lif_inference", "fold_conv_bn", "fold_repconv",
    "bn_affine", "dense_repconvs",
]

_BN = nn.modules.batchnorm._BatchNorm


# --------------------------------------------------------------------------- conv / BN folds
fold_conv_bn = fuse_conv_bn  # public names of the layer folds (layers.fuse, RepConv.to_conv)


def fold_repconv(rep: RepConv, bn: _BN | None = None) -> nn.Conv2d:  # the dense form
    """One zero-padded k×k ``Conv2d`` (with bias) equal to ``bn(rep(x))`` in eval mode
    (``RepConv.to_conv``; the padded BN makes it exact, docs/design.md §6.2)."""
    return rep.to_conv(bn)


# --------------------------------------------------------------------------- attention
def _attention_neuron(lif: nn.Module, g: torch.Tensor, shift: torch.Tensor,
                      scale: tuple[str, float], like: torch.Tensor) -> InferenceLIF | None:
    """Scale (+ ``attn_bn`` as ``(g, shift)``) before an attention LIF → per-channel threshold,
    bias and sign (``AttentionBranch.fuse_scale`` calls it; None: not a LIF, left alone).

    The LIF sees ``z = a·I + c`` per channel (``I`` the unscaled core output). Its equations
    are linear and homogeneous in (input, membrane) when ``v_reset = 0``, so with
    ``x' = sign(a)·I + c/|a|`` the membrane is ``h / |a|`` at every step: it fires when
    ``h/|a| ≥ v_th/|a|`` and resets to 0 — same spikes. Integer-LIF: one spike is worth
    ``1/|a|`` membrane units (``unit``). A channel with ``a = 0`` keeps its constant input.
    """
    if not isinstance(lif, LIF):
        return None
    p = lif.params
    if p.v_reset != 0.0 or isinstance(p.v_th, torch.Tensor):
        raise ValueError("fold: the attention LIF needs v_reset = 0 and a scalar v_th to absorb "
                         f"its scale, got v_reset={p.v_reset}, v_th={p.v_th}")
    op, c = scale
    # |a| = |g| / c ("div") or |g| · c ("mul"); keep v_th / |a| exact for power-of-two scales
    mag = g.abs()
    if op == "div":
        inv = c / mag                                         # 1 / |a|
    else:
        inv = 1.0 / (mag * c)
    zero = mag == 0
    inv = torch.where(zero, torch.ones_like(inv), inv)
    sign = torch.sign(g)
    bias = torch.where(zero, shift, shift * inv)
    view = (-1, 1, 1)
    kw = dict(dtype=like.dtype, device=like.device)
    has_bias = bool((bias != 0).any())
    flips = bool((sign != 1).any())
    if p.spike_max == 1:
        return InferenceLIF(p, lif.temporal_state, v_th=(p.v_th * inv).view(view).to(**kw),
                            sign=sign.view(view).to(**kw) if flips else None,
                            bias=bias.view(view).to(**kw) if has_bias else None)
    return InferenceLIF(p, lif.temporal_state, unit=inv.view(view).to(**kw),
                        sign=sign.view(view).to(**kw) if flips else None,
                        bias=bias.view(view).to(**kw) if has_bias else None)


# --------------------------------------------------------------------------- Integer-LIF 1/D
def _move_integer_scale(lif: nn.Module | None, consumers: list[nn.Module]) -> None:
    """Make ``lif`` emit integer counts and divide its consumers' weights by D."""
    if not isinstance(lif, InferenceLIF) or lif.spike_max == 1 or not lif.normalise:
        return
    consumers = [entry_layer(c) for c in consumers]
    if not consumers or not all(isinstance(c, (nn.Conv1d, nn.Conv2d, nn.Linear)) for c in consumers):
        return
    with torch.no_grad():
        for c in consumers:
            c.weight.mul_(1.0 / lif.spike_max)
    lif.normalise = False


def _integer_spikes(model: nn.Module) -> None:
    """Every module that declares ``spike_consumers()`` (the blocks, the backbone's head)."""
    for mod in model.modules():
        declared = getattr(mod, "spike_consumers", None)
        if callable(declared):
            for lif, consumers in declared():
                _move_integer_scale(lif, consumers)


# --------------------------------------------------------------------------- entry point
def is_folded(model: nn.Module) -> bool:
    """True for a model returned by :func:`fold`."""
    return bool(getattr(model, "_svf_folded", False))


def dense_repconvs(model: nn.Module) -> nn.Module:
    """``model`` itself if it has no :class:`FusedRepConv`, else a copy in which each is its
    equal dense 3×3 conv (``FusedRepConv.to_conv``): the form the energy model counts."""
    if not any(isinstance(m, FusedRepConv) for m in model.modules()):
        return model
    m = copy.deepcopy(model)
    for mod in list(m.modules()):
        for name, child in list(mod.named_children()):
            if isinstance(child, FusedRepConv):
                setattr(mod, name, child.to_conv())
    return m


def fold(model: nn.Module, integer_spikes: bool = True, repconv: str = "auto") -> nn.Module:
    """Deployed (re-parameterised) eval-mode copy of ``model``; the input is not modified.

    Folded and unfolded models give the same spikes and logits in eval mode up to float
    rounding (see module docstring). ``integer_spikes`` moves an Integer-LIF's ``1/D`` into
    the weights of the convolutions/linears it feeds, so they see integer counts 0..D.
    ``repconv``: ``"auto"`` (each RepConv in the form with fewer MACs: factorised for C→C),
    ``"dense"`` (one 3×3 conv each) or ``"factorised"`` (see module docstring).
    Works on a :class:`~spikevideoformer.SpikeVideoFormer` or any module built from
    ``spikevideoformer.layers`` blocks; other modules are left as they are.
    """
    if repconv not in REPCONV_FOLDS:
        raise ValueError(f"repconv must be one of {REPCONV_FOLDS}, got {repconv!r}")
    if is_folded(model):
        return copy.deepcopy(model)
    m = copy.deepcopy(model).eval()
    for mod in list(m.modules()):  # each block folds its own BNs and RepConvs (their fuse())
        fuse = getattr(mod, "fuse", None)
        if isinstance(mod, AttentionBranch):
            mod.fuse(repconv=repconv)
        elif callable(fuse):
            fuse()
    for mod in list(m.modules()):
        if isinstance(mod, AttentionBranch):
            mod.fuse_scale(_attention_neuron)
    # any other RepConv, alone or followed by its BatchNorm2d
    for mod in list(m.modules()):
        for name, child in list(mod.named_children()):
            new = fuse_repconv_bn(child, repconv)
            if new is not child:
                setattr(mod, name, new)
    for mod in list(m.modules()):
        for name, child in list(mod.named_children()):
            if isinstance(child, LIF):
                setattr(mod, name, InferenceLIF.from_lif(child))
    if integer_spikes:
        _integer_spikes(m)
    for prm in m.parameters():
        prm.requires_grad_(False)
    m._svf_folded = True
    return m.eval()
