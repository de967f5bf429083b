"""Quantise a folded SpikeVideoFormer into the integer graph (docs/integer.md, "Quantisation").

``IntegerNetwork.from_model(folded, weight_bits=8, input_size=(H, W))`` walks the deployed
network (``deploy.fold``; each RepConv as its dense 3×3 conv) in forward order and emits the ops
of ``graph_format.py``. Scales (real value of one integer unit) are per output channel:

* every conv gets its own per-channel power-of-two scale ``σ[o] = 2^ceil(log2(max|w_eff[o]| /
  q_max))`` (``q_max = 2^(bits-1) - 1``), so changing scale is a shift;
* the residual stream of a stage is one integer tensor whose per-channel scale is the coarsest
  of the layers writing into it (the stage's first conv, each block's last conv); a finer writer
  shifts its accumulator right (rounding) into it; biases are integers in the stream's scale;
* a neuron reads its input in membrane units ``μ = σ / 2^F`` (``F = membrane_frac_bits``):
  thresholds ``Θ = ceil(v_th / μ)``, Integer-LIF spike unit ``U = round(1/μ)`` — the weight
  scales end up in the integer thresholds;
* attention cores run on spike counts: SDHA ``(2q - D)((2k - D)^T v)``, SDSA ``q(k^T v)``, both
  ``D³`` times the float core, so the attention neuron's ``1/(2C)`` (or 1/8), its BN and ``D³``
  become its threshold, sign and bias (docs/design.md §6.3);
* the stem multiplies fixed-point pixels ``X = 2^8·pix - round(2^8·z)`` (``z`` the pixel value
  that normalises to 0) by integer weights; the head sums over space, fires, accumulates
  ``W s`` over time, and the logits are ``acc · σ_k / T``;
* a segmentation model (a backbone under a decoder that declares ``deploy_layout()``) gets
  its decoder from ``decoder.py``: per-frame logits at stride 4.

The graph builder itself (scales, convs, neurons) is ``builder.py``.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from ...layers.blocks import ConvBlock, DownSampling, SpikeAttention, TransformerBlock
from ...models.backbone import SpikeVideoFormer
from ..fold import dense_repconvs, fold, is_folded
from .builder import _Builder
from .decoder import build_decoder, decoder_layout
from .graph_format import FORMAT, VERSION, load_graph, save_graph

__all__ = ["IntegerNetwork", "PIXEL_FRAC_BITS"]

PIXEL_FRAC_BITS = 8


# --------------------------------------------------------------------------- the network walk
def _stage_segments(model: SpikeVideoFormer) -> list[list[nn.Module]]:
    """Blocks in forward order, split where a DownSampling starts a new residual stream."""
    segs: list[list[nn.Module]] = []
    for stage, mods in model.stage_modules().items():
        if stage == "head":
            continue
        for mod in mods.values():
            for blk in (mod if isinstance(mod, nn.ModuleList) else [mod]):
                if isinstance(blk, DownSampling):
                    segs.append([blk])
                else:
                    segs[-1].append(blk)
    return segs


def _last_spikes_unit(att: SpikeAttention) -> float:
    last = att.attn_lif if att.temporal is None else att.temporal.attn_lif
    return last.out_scale


def _stream_writers(b: _Builder, seg: list[nn.Module], input_unit) -> list[np.ndarray]:
    """Effective weights of every layer that writes into this segment's residual stream."""
    ds = seg[0]
    unit = input_unit if ds.encode_lif is None else ds.encode_lif.out_scale
    out = [b.w_eff(ds.encode_conv, unit)]
    for blk in seg[1:]:
        if isinstance(blk, ConvBlock):
            sep = blk.Conv
            dw_sigma = b.scale_of([b.w_eff(sep.dwconv, sep.lif2.out_scale)])
            out += [b.w_eff(sep.pwconv2, dw_sigma), b.w_eff(blk.conv2, blk.lif2.out_scale)]
        elif isinstance(blk, TransformerBlock):
            for att in (blk.attn, blk.tattn):
                if att is not None:
                    out.append(b.w_eff(att.proj_conv, _last_spikes_unit(att)))
            out.append(b.w_eff(blk.mlp.fc2_conv, blk.mlp.fc2_lif.out_scale))
        else:
            raise TypeError(f"the integer engine does not know block {type(blk).__name__}")
    return out


def _branch(b: _Builder, br, s: str, unit: float) -> tuple[str, float]:
    """q/k/v convs and neurons, the integer core, the attention neuron (docs/design.md §3.1)."""
    if br.attention not in ("hamming", "dot"):
        raise ValueError(f"the integer engine runs spiking attention (hamming, dot), not {br.attention!r}")
    qkv = []
    for conv, lif in ((br.q_conv, br.q_lif), (br.k_conv, br.k_lif), (br.v_conv, br.v_lif)):
        t, sc = b.conv(conv, s, unit)
        qkv.append(b.lif(lif, t, sc))
    dn = int(round(1.0 / qkv[0][1]))
    name = b.name(br)
    core = b.emit("attention", name, [t for t, _ in qkv],
                  {"kind": br.attention, "grouping": br.grouping, "heads": br.heads, "dn": dn,
                   "stage": b.stage_of(b.path[id(br)])}, out=f"{name}.core")
    return b.lif(br.attn_lif, core, np.full(br.dim, 1.0 / dn ** 3))


def _block(b: _Builder, blk: nn.Module, x: str, sigma: np.ndarray) -> str:
    if isinstance(blk, ConvBlock):
        sep = blk.Conv
        s, u = b.lif(sep.lif1, x, sigma)
        a, sa = b.conv(sep.pwconv1, s, u)
        s, u = b.lif(sep.lif2, a, sa)
        d, sd = b.conv(sep.dwconv, s, u)
        y, _ = b.conv(sep.pwconv2, d, sd, sigma, real=True)
        x = b.add(x, y, b.name(sep) + ".residual")
        s, u = b.lif(blk.lif1, x, sigma)
        a, sa = b.conv(blk.conv1, s, u)
        s, u = b.lif(blk.lif2, a, sa)
        y, _ = b.conv(blk.conv2, s, u, sigma)
        return b.add(x, y, b.name(blk) + ".residual")
    for att in (blk.attn, blk.tattn):
        if att is None:
            continue
        s, u = b.lif(att.head_lif, x, sigma)
        z, u = _branch(b, att, s, u)
        if att.temporal is not None:
            z, u = _branch(b, att.temporal, z, u)
        y, _ = b.conv(att.proj_conv, z, u, sigma)
        x = b.add(x, y, b.name(att) + ".residual")
    m = blk.mlp
    s, u = b.lif(m.fc1_lif, x, sigma)
    a, sa = b.conv(m.fc1_conv, s, u)
    s, u = b.lif(m.fc2_lif, a, sa)
    y, _ = b.conv(m.fc2_conv, s, u, sigma)
    return b.add(x, y, b.name(blk) + ".mlp_residual")


def conv_out_size(size: tuple[int, int], conv: nn.Module) -> tuple[int, int]:
    """Output ``(H, W)`` of a 2-D conv (square kernel, stride, padding) on ``size``."""
    k, st, pad = conv.kernel_size[0], conv.stride[0], conv.padding[0]
    return tuple((n + 2 * pad - k) // st + 1 for n in size)


def _backbone(model: SpikeVideoFormer, b: _Builder, input_unit: np.ndarray) -> dict:
    """The input op and the stem + stages 1-4; returns ``stage → (stream tensor, its scale
    σ [C], its size (H, W))`` at the end of each stage (the ``forward_features`` outputs)."""
    x = b.emit("input", "input", [], {"frac_bits": PIXEL_FRAC_BITS}, out="input")
    sigma, size, feats = None, b.size, {}
    for seg in _stage_segments(model):
        ds = seg[0]
        new_sigma = b.scale_of(_stream_writers(b, seg, input_unit))
        if ds.encode_lif is None:  # the stem: fixed-point pixels × integer weights
            x, _ = b.conv(ds.encode_conv, x, input_unit, new_sigma, real=True)
        else:
            s, u = b.lif(ds.encode_lif, x, sigma)
            x, _ = b.conv(ds.encode_conv, s, u, new_sigma)
        sigma, size = new_sigma, conv_out_size(size, ds.encode_conv)
        for blk in seg:
            if blk is not ds:
                x = _block(b, blk, x, sigma)
            feats[b.stage_of(b.path[id(blk)])] = (x, sigma, size)
    return feats


def _classifier(model: SpikeVideoFormer, b: _Builder, x: str, sigma: np.ndarray,
                size: tuple[int, int]) -> dict:
    """The classification head: spatial sum, LIF, linear, sum over T."""
    pooled = b.emit("pool", "head_pool", [x], {"stage": "head"})
    s, u = b.lif(model.head_lif, pooled, sigma / (size[0] * size[1]))  # the mean's 1/(HW) in Θ
    head = model.head
    if model.head_kd is not None:  # mean of the two heads = one head with the mean weights
        head = copy.deepcopy(model.head)
        with torch.no_grad():
            head.weight.copy_((model.head.weight + model.head_kd.weight) / 2)
            head.bias.copy_((model.head.bias + model.head_kd.bias) / 2)
        b.keep(head, b.path[id(model.head)])
    acc, sk = b.conv(head, s, u)
    total = b.emit("time_sum", "head_time_sum", [acc], {"stage": "head"})
    return {"tensor": total, "kind": "logits", "scale": sk.tolist(),
            "classes": int(model.num_classes), "note": "logits = accumulator * scale / T"}


def _build(model: nn.Module, b: _Builder, input_unit: np.ndarray, zero_point: np.ndarray) -> dict:
    found = decoder_layout(model)
    bb = found[0] if found else model
    feats = _backbone(bb, b, input_unit)
    graph = {"format": FORMAT, "version": VERSION,
             "input": {"layout": "THWC", "dtype": "uint8", "channels": int(bb.in_chans),
                       "size": list(b.size), "frac_bits": PIXEL_FRAC_BITS,
                       "zero_point": zero_point.astype(int).tolist(),
                       "real_per_unit": (input_unit * 2 ** PIXEL_FRAC_BITS).tolist()},
             "weight_bits": b.bits, "membrane_frac_bits": b.frac, "ops": b.ops, "scales": b.scales}
    x, sigma, size = feats["stage4"]
    if found:
        graph["output"] = build_decoder(b, found[1], [feats[f"stage{i}"] for i in range(1, 5)])
    elif bb.num_classes <= 0:  # a backbone without head (e.g. under a task decoder): features
        graph["output"] = {"tensor": x, "kind": "features", "scale": sigma.tolist(),
                           "note": "stage-4 features [T, C, H, W] = integers * scale[c]"}
    else:
        graph["output"] = _classifier(bb, b, x, sigma, size)
    return graph


class IntegerNetwork:
    """An integer-only SpikeVideoFormer: JSON graph + integer tensors (docs/integer.md).

    Build with :meth:`from_model`, run with :meth:`run` (the NumPy runner), write with
    :meth:`save` (``graph.json`` + ``tensors.npz``), read back with :meth:`load`.
    """

    def __init__(self, graph: dict, tensors: dict) -> None:
        self.graph, self.tensors = graph, tensors

    @classmethod
    def from_model(cls, model: nn.Module, weight_bits: int = 8, *, input_size: tuple[int, int],
                   membrane_frac_bits: int = 4,
                   input_scale=1 / 255, input_offset=0.0) -> IntegerNetwork:
        """Quantise ``model`` (folded by ``deploy.fold``, or folded here) for clips of
        ``input_size = (H, W)``; the float input is ``input_scale · pix + input_offset`` per
        channel (``1/255, 0``: frames in [0, 1]; ``1, 0``: event counts; ImageNet
        normalisation ``1/(255 std), -mean/std``)."""
        if not isinstance(model, SpikeVideoFormer) and decoder_layout(model) is None:
            raise TypeError(f"IntegerNetwork.from_model needs a SpikeVideoFormer or a segmentation "
                            f"model (backbone + a head with deploy_layout()), got {type(model).__name__}")
        net = dense_repconvs(model) if is_folded(model) else fold(model, repconv="dense")
        c = net.in_chans
        a = np.broadcast_to(np.asarray(input_scale, dtype=np.float64).reshape(-1), (c,)).copy()
        off = np.broadcast_to(np.asarray(input_offset, dtype=np.float64).reshape(-1), (c,)).copy()
        if not np.all(a > 0):
            raise ValueError(f"input_scale must be > 0 per channel, got {a.tolist()}")
        if len(input_size) != 2 or min(input_size) < 16:
            raise ValueError(f"input_size must be (H, W) with H, W >= 16, got {input_size}")
        zero_point = np.rint(-off / a * 2 ** PIXEL_FRAC_BITS)  # pixel value that normalises to 0
        b = _Builder(net, int(weight_bits), int(membrane_frac_bits), tuple(int(n) for n in input_size))
        graph = _build(net, b, a / 2 ** PIXEL_FRAC_BITS, zero_point)
        return cls(graph, b.tensors)

    def run(self, clip: np.ndarray, record_spikes: bool = False):
        """Run the NumPy runner on ``clip uint8 [T, H, W, C]`` → ``runner.RunResult``."""
        from .runner import IntegerGraph, run
        return run(IntegerGraph(self.graph, self.tensors), clip, record_spikes)

    def save(self, out_dir) -> str:
        """Write ``graph.json`` + ``tensors.npz`` into ``out_dir`` (atomically)."""
        return save_graph(self.graph, self.tensors, out_dir)

    @classmethod
    def load(cls, path) -> IntegerNetwork:
        return cls(*load_graph(path))

    def float_input(self, clip: np.ndarray) -> torch.Tensor:
        """The float model's input for ``clip`` (``[1, T, C, H, W]``), from the graph's
        fixed-point pixels, so both see the same values."""
        spec = self.graph["input"]
        x = (clip.transpose(0, 3, 1, 2).astype(np.float64) * 2 ** spec["frac_bits"]
             - np.asarray(spec["zero_point"], dtype=np.float64).reshape(1, -1, 1, 1))
        x = x * (np.asarray(spec["real_per_unit"]).reshape(1, -1, 1, 1) / 2 ** spec["frac_bits"])
        return torch.from_numpy(x).float().unsqueeze(0)

    def __repr__(self) -> str:
        n = sum(int(math.prod(t.shape)) for t in self.tensors.values())
        return (f"IntegerNetwork({len(self.graph['ops'])} ops, {n} integers, "
                f"weight_bits={self.graph['weight_bits']})")
