"""Inference folding: re-parameterise a trained SpikeVideoFormer into its deployed form (docs/design.md §6).

``fold(model)`` returns an eval-mode deep copy in which

* every ``RepConv`` (and the ``BatchNorm2d`` that follows it in ``Sequential(RepConv, BN)``)
  becomes one zero-padded 3×3 ``Conv2d`` with bias (:func:`fold_repconv`);
* every conv/linear absorbs the ``BatchNorm`` that follows it (:func:`fold_conv_bn`);
* the attention scale and ``attn_bn`` in front of an attention LIF become that LIF's
  per-channel threshold, plus a constant per-channel input bias and a per-channel sign
  (±1, so the attention output is only added or subtracted) — see :class:`InferenceLIF`;
* every LIF becomes an :class:`InferenceLIF`: the same equations as
  ``layers.neuron.LIFFunction`` written as a plain loop over T (no custom autograd Function),
  so ``torch.export`` can trace it (the exported graph unrolls the loop for a fixed T);
* with ``integer_spikes=True`` an Integer-LIF (``spike_max = D > 1``) that feeds only
  convolutions/linears emits integer counts ``0..D`` and the ``1/D`` moves into the weights
  of those layers, so they see integers (k additions for a spike of value k).

Derivation of the RepConv fold. With ``s`` the input, ``W1`` the first 1×1, ``(g1, b1)`` the
padded BN as a per-channel affine (``b1 = BN1(0)``, the value on the border), ``Wd`` the
depth-wise 3×3 (no padding), ``W2`` the last 1×1 and ``(g2, b2)`` the last BN::

    pad_BN1(0)(g1·W1 s + b1) = g1 · zeropad(W1 s) + b1            (border: g1·0 + b1 ✓)
                             = g1 · W1 zeropad(s) + b1            (1×1, no bias, commutes with 0-pad)
    dw:   Wd ⋆ (...)         = (g1 Wd) ⋆ W1 zeropad(s) + b1 · ΣWd
    out = g2 · W2 (...) + b2
        = conv3×3_pad1(s; K) + c,  K[o,i,u,v] = g2[o] Σ_m W2[o,m] g1[m] Wd[m,u,v] W1[m,i]
                                   c[o]       = g2[o] Σ_m W2[o,m] b1[m] ΣWd[m] + b2[o]

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

from ..layers.blocks import MLP, ConvBlock, DownSampling, SepConv, SpikeAttention
from ..layers.inference_neuron import InferenceLIF, lif_inference
from ..layers.neuron import LIF
from ..layers.repconv import BNAndPad, RepConv

__all__ = [
    "fold", "is_folded", "InferenceLIF", "lif_inference", "fold_conv_bn", "fold_repconv",
    "bn_affine",
]

_BN = nn.modules.batchnorm._BatchNorm

# (block class, [(conv attribute, following BN attribute)]) — BN folded into the conv
_CONV_BN_PAIRS: tuple[tuple[type, tuple[tuple[str, str], ...]], ...] = (
    (DownSampling, (("encode_conv", "encode_bn"),)),
    (SepConv, (("pwconv1", "bn1"), ("pwconv2", "bn2"))),
    (ConvBlock, (("conv1", "bn1"), ("conv2", "bn2"))),
    (MLP, (("fc1_conv", "fc1_bn"), ("fc2_conv", "fc2_bn"))),
)

# (block class, neuron attribute, consumers): layers that receive that neuron's spikes and
# nothing else, so the Integer-LIF 1/D can move into their weights. DwConv in SepConv sees lif2.
_SPIKE_CONSUMERS: tuple[tuple[type, str, tuple[str, ...]], ...] = (
    (DownSampling, "encode_lif", ("encode_conv",)),
    (SepConv, "lif1", ("pwconv1",)),
    (SepConv, "lif2", ("dwconv",)),
    (ConvBlock, "lif1", ("conv1",)),
    (ConvBlock, "lif2", ("conv2",)),
    (MLP, "fc1_lif", ("fc1_conv",)),
    (MLP, "fc2_lif", ("fc2_conv",)),
)


# --------------------------------------------------------------------------- conv / BN folds
def bn_affine(bn: _BN) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as ``y = scale · x + shift`` (float64, running statistics)."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(f"cannot fold {bn}: it has no running statistics (track_running_stats=False)")
    mean = bn.running_mean.detach().double()
    var = bn.running_var.detach().double()
    scale = 1.0 / torch.sqrt(var + bn.eps)
    shift = -mean * scale
    if bn.affine:
        w, b = bn.weight.detach().double(), bn.bias.detach().double()
        scale, shift = scale * w, shift * w + b
    return scale, shift


def fold_conv_bn(conv: nn.Conv1d | nn.Conv2d | nn.Linear, bn: _BN | None) -> nn.Module:
    """One conv/linear equal to ``bn(conv(x))`` in eval mode (new module, with bias)."""
    if bn is None or isinstance(bn, nn.Identity):
        return conv
    scale, shift = bn_affine(bn)
    w = conv.weight.detach().double()
    b = conv.bias.detach().double() if conv.bias is not None else torch.zeros_like(scale)
    new = copy.deepcopy(conv)
    if new.bias is None:
        new.bias = nn.Parameter(torch.zeros(w.shape[0], dtype=conv.weight.dtype,
                                            device=conv.weight.device))
    shape = (-1,) + (1,) * (w.dim() - 1)
    with torch.no_grad():
        new.weight.copy_((w * scale.view(shape)).to(conv.weight.dtype))
        new.bias.copy_((b * scale + shift).to(conv.weight.dtype))
    return new


def fold_repconv(rep: RepConv, bn: _BN | None = None) -> nn.Conv2d:
    """One zero-padded k×k ``Conv2d`` (with bias) equal to ``bn(rep(x))`` in eval mode.

    See the module docstring for the derivation (the padded BN makes it exact).
    """
    conv1, pad_bn, tail = rep.body[0], rep.body[1], rep.body[2]
    dw, conv2, bn2 = tail[0], tail[1], tail[2]
    if not isinstance(pad_bn, BNAndPad):
        raise TypeError(f"unexpected RepConv layout: {type(pad_bn).__name__} instead of BNAndPad")
    if dw.stride != (1, 1) or dw.dilation != (1, 1) or dw.padding not in (0, (0, 0)):
        raise ValueError("fold_repconv expects a stride-1, undilated, unpadded depth-wise conv")
    w1 = conv1.weight.detach().double()[:, :, 0, 0]          # [M, Cin]
    g1, b1 = bn_affine(pad_bn.bn)                            # [M]
    wd = dw.weight.detach().double()[:, 0]                   # [M, k, k]
    w2 = conv2.weight.detach().double()[:, :, 0, 0]          # [Cout, M]
    g2, b2 = bn_affine(bn2)                                  # [Cout]
    kernel = torch.einsum("om,muv,mi->oiuv", w2, g1.view(-1, 1, 1) * wd, w1) * g2.view(-1, 1, 1, 1)
    bias = g2 * (w2 @ (b1 * wd.sum(dim=(1, 2)))) + b2
    if bn is not None:
        g3, b3 = bn_affine(bn)
        kernel = kernel * g3.view(-1, 1, 1, 1)
        bias = g3 * bias + b3
    k = wd.shape[-1]
    ref = conv1.weight
    out = nn.Conv2d(w1.shape[1], w2.shape[0], k, padding=pad_bn.pad, bias=True,
                    device=ref.device, dtype=ref.dtype)
    with torch.no_grad():
        out.weight.copy_(kernel.to(ref.dtype))
        out.bias.copy_(bias.to(ref.dtype))
    return out


def _fold_repconv_seq(m: nn.Module) -> nn.Module:
    """``RepConv`` or ``Sequential(RepConv, BN)`` → one conv; anything else unchanged."""
    if isinstance(m, RepConv):
        return fold_repconv(m)
    if isinstance(m, nn.Sequential) and len(m) == 2 and isinstance(m[0], RepConv) \
            and isinstance(m[1], nn.BatchNorm2d):
        return fold_repconv(m[0], m[1])
    return m


# --------------------------------------------------------------------------- attention
def _fold_attention_lif(att: SpikeAttention, prefix: str) -> None:
    """Scale (+ ``attn_bn``) before the attention LIF → per-channel threshold, bias and sign.

    The LIF sees ``z = a·I + c`` per channel (``I`` the unscaled core output). Its equations
    are linear and homogeneous in (input, membrane) when ``v_reset = 0``, so with
    ``x' = sign(a)·I + c/|a|`` the membrane is ``h / |a|`` at every step: it fires when
    ``h/|a| ≥ v_th/|a|`` and resets to 0 — same spikes. Integer-LIF: one spike is worth
    ``1/|a|`` membrane units (``unit``). A channel with ``a = 0`` keeps its constant input.
    """
    lif = getattr(att, f"{prefix}attn_lif")
    if not isinstance(lif, LIF):
        return
    p = lif.params
    if p.v_reset != 0.0 or isinstance(p.v_th, torch.Tensor):
        raise ValueError("fold: the attention LIF needs v_reset = 0 and a scalar v_th to absorb "
                         f"its scale, got v_reset={p.v_reset}, v_th={p.v_th}")
    op, c = att.scale
    dim = att.dim
    ref = next(att.parameters())
    if att.attention == "hamming":
        bn = getattr(att, f"{prefix}attn_bn")
        g, shift = bn_affine(bn)
        setattr(att, f"{prefix}attn_bn", nn.Identity())
    else:  # dot: scale only
        g = torch.ones(dim, dtype=torch.float64)
        shift = torch.zeros(dim, dtype=torch.float64)
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
    kw = dict(dtype=ref.dtype, device=ref.device)
    has_bias = bool((bias != 0).any())
    flips = bool((sign != 1).any())
    if p.spike_max == 1:
        new = InferenceLIF(p, lif.temporal_state, v_th=(p.v_th * inv).view(view).to(**kw),
                           sign=sign.view(view).to(**kw) if flips else None,
                           bias=bias.view(view).to(**kw) if has_bias else None)
    else:
        new = InferenceLIF(p, lif.temporal_state, unit=inv.view(view).to(**kw),
                           sign=sign.view(view).to(**kw) if flips else None,
                           bias=bias.view(view).to(**kw) if has_bias else None)
    setattr(att, f"{prefix}attn_lif", new)


def _fold_attention(att: SpikeAttention) -> None:
    for i, _ in enumerate(att.cores):
        p = "t_" if i else ""
        for n in ("q", "k", "v"):
            setattr(att, f"{p}{n}_conv", _fold_repconv_seq(getattr(att, f"{p}{n}_conv")))
        if att.attention != "softmax":
            _fold_attention_lif(att, p)
    att.proj_conv = _fold_repconv_seq(att.proj_conv)
    if att.attention != "softmax":
        att.scale = ("mul", 1.0)  # absorbed into the attention LIFs (×1.0 is exact)


# --------------------------------------------------------------------------- Integer-LIF 1/D
def _scale_weights(layer: nn.Module, factor: float) -> None:
    with torch.no_grad():
        layer.weight.mul_(factor)


def _move_integer_scale(neuron_owner: nn.Module, neuron_attr: str, consumers: list[nn.Module]) -> None:
    """Make ``owner.<neuron_attr>`` emit integer counts and divide its consumers' weights by D."""
    lif = getattr(neuron_owner, neuron_attr, None)
    if not isinstance(lif, InferenceLIF) or lif.spike_max == 1 or not lif.normalise:
        return
    if not consumers or not all(isinstance(c, (nn.Conv1d, nn.Conv2d, nn.Linear)) for c in consumers):
        return
    for c in consumers:
        _scale_weights(c, 1.0 / lif.spike_max)
    lif.normalise = False


def _integer_spikes(model: nn.Module) -> None:
    from ..models.backbone import SpikeVideoFormer

    for mod in model.modules():
        for cls, attr, names in _SPIKE_CONSUMERS:
            if isinstance(mod, cls):
                _move_integer_scale(mod, attr, [getattr(mod, n) for n in names])
        if isinstance(mod, SpikeAttention):
            qkv = [getattr(mod, f"{n}_conv") for n in ("q", "k", "v")]
            _move_integer_scale(mod, "head_lif", qkv)
            if mod.attention != "softmax":
                first_next = ([getattr(mod, f"t_{n}_conv") for n in ("q", "k", "v")]
                              if len(mod.cores) > 1 else [mod.proj_conv])
                _move_integer_scale(mod, "attn_lif", first_next)
                if len(mod.cores) > 1:
                    _move_integer_scale(mod, "t_attn_lif", [mod.proj_conv])
        if isinstance(mod, SpikeVideoFormer) and isinstance(mod.head, nn.Linear):
            heads = [mod.head] + ([mod.head_kd] if hasattr(mod, "head_kd") else [])
            _move_integer_scale(mod, "head_lif", heads)


# --------------------------------------------------------------------------- entry point
def is_folded(model: nn.Module) -> bool:
    """True for a model returned by :func:`fold`."""
    return bool(getattr(model, "_svf_folded", False))


def fold(model: nn.Module, integer_spikes: bool = True) -> nn.Module:
    """Deployed (re-parameterised) eval-mode copy of ``model``; the input is not modified.

    Folded and unfolded models give the same spikes and logits in eval mode up to float
    rounding (see module docstring). ``integer_spikes`` moves an Integer-LIF's ``1/D`` into
    the weights of the convolutions/linears it feeds, so they see integer counts 0..D.
    Works on a :class:`~spikevideoformer.SpikeVideoFormer` or any module built from
    ``spikevideoformer.layers`` blocks; other modules are left as they are.
    """
    if is_folded(model):
        return copy.deepcopy(model)
    m = copy.deepcopy(model).eval()
    for mod in list(m.modules()):
        if isinstance(mod, SpikeAttention):
            _fold_attention(mod)
    # any other RepConv, alone or followed by its BatchNorm2d
    for mod in list(m.modules()):
        for name, child in list(mod.named_children()):
            new = _fold_repconv_seq(child)
            if new is not child:
                setattr(mod, name, new)
    for mod in list(m.modules()):
        for cls, pairs in _CONV_BN_PAIRS:
            if isinstance(mod, cls):
                for conv_name, bn_name in pairs:
                    bn = getattr(mod, bn_name)
                    if isinstance(bn, _BN):
                        setattr(mod, conv_name, fold_conv_bn(getattr(mod, conv_name), bn))
                        setattr(mod, bn_name, nn.Identity())
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
