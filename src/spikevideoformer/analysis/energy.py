"""Energy, operation and firing-rate profile of a spiking video model (docs/design.md §5).

Energy model (45 nm CMOS, Horowitz 2014, as used by the paper and Meta-SpikeFormer)::

    E = E_MAC · Σ_{layers fed by real values} MACs  +  E_AC · Σ_{spike-fed layers} SOPs
    SOPs = effective rate × MACs,   effective rate = firing rate × mean spike count

with ``E_MAC = 4.6 pJ`` and ``E_AC = 0.9 pJ``; MACs are dense multiply-accumulates summed over
the T time steps, per clip (the batch is averaged). A spike of integer value k (Integer-LIF)
is k additions, so the effective rate of a normalised ``k/D`` input is ``mean(k)`` over all
entries (= fraction of non-zero entries × mean non-zero count).

What is counted (hooks only; the model is not modified):

* every ``nn.Conv1d``/``nn.Conv2d``/``nn.Linear`` call: ``MACs = out.numel() · C_in/groups ·
  kernel``; its input is *spike* when it comes from a spiking neuron (or, for the model
  input, per ``input_is_spikes``; for any other input, when its values are spike values and
  not all zero), otherwise *real*;
* the two products of every attention core on ``q, k, v`` captured at their neurons.
  SDHA/SDSA (linear form, docs/design.md §3.2) cost ``n·d²`` per head each:
  ``K^T V`` is driven by the spikes of V — every non-zero entry of V adds (SDSA) or
  adds/subtracts (SDHA, ±1 = 2K-1) one d-vector — so its SOPs are ``rate(V) × MACs``;
  ``Q (K^T V)`` is driven by the spike operand Q: SOPs are ``rate(Q) × MACs`` for SDSA and,
  for SDHA, ``mean|2Q-1| × MACs`` in spike units — every ±1 entry of ``2Q-1`` is one addition
  or subtraction, so the effective rate is 1 for binary spikes. Softmax attention (the ANN
  counterpart, real operands) costs ``2·n²·d`` MACs per head (``Q K^T`` and ``A V``).
* BatchNorm, the attention scale, LIF updates, pooling and residual additions are not counted
  (BN and the scale fold into weights and thresholds at inference, see ``deploy.fold``).

By default the profile runs on ``deploy.fold(model)``, the deployed network in which every
RepConv is one 3×3 convolution fed by spikes and BN is absorbed, so that, as in the paper (design §5.2), the
stem is fed by real values — and so is ``SepConv.pwconv2``, which follows the depth-wise conv
with no neuron in between (Meta-SpikeFormer layout); it is counted as MACs. ``fold=False``
profiles the training graph as is: the inner layers of RepConv then see BatchNorm outputs
and count as MACs too. See docs/energy.md.

Rows are named as in the state_dict (the module path, except that the factorized design's
temporal branch ``….attn.temporal.q_conv`` is saved, and listed, as ``….attn.t_q_conv``; its
attention products are ``….attn.t_kv`` / ``….attn.t_qkv``). Stages come from the model
(``SpikeVideoFormer.stage_of``: stem = ``downsample1_1``, stage1 … stage4, head); in a model
that wraps a backbone, the wrapper's own layers count as "head"; without a backbone, "other".
"""
from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

from ..layers.blocks import state_dict_name
from ._trace import (
    AttentionOperands, Tracer, model_spike_max, spike_counts, stage_resolver, stem_layers,
)
from .energy_report import EnergyReport, LayerEnergy, NeuronStats, StageEnergy

__all__ = ["E_MAC", "E_AC", "LayerEnergy", "NeuronStats", "StageEnergy", "EnergyReport", "profile",
           "calibrate_bn"]

E_MAC = 4.6e-12  # J per multiply-accumulate, 45 nm (docs/design.md §5.1)
E_AC = 0.9e-12   # J per accumulate (one spike-driven addition), 45 nm


# --------------------------------------------------------------------------- profiling
class _Profiler:
    def __init__(self, net: nn.Module, batch: int, e_mac: float, e_ac: float,
                 spike_max: int | None, input_is_spikes, stem_name: str | None,
                 raster_neurons: int) -> None:
        self.batch, self.e_mac, self.e_ac = batch, e_mac, e_ac
        self.stage_of = stage_resolver(net)
        self.row_name = lambda path: state_dict_name(net, path)
        self.spike_max = spike_max
        self.input_is_spikes = input_is_spikes
        self.stem_name = stem_name
        self.raster_neurons = raster_neurons
        self.rows: OrderedDict[str, dict] = OrderedDict()
        self.neurons: OrderedDict[str, NeuronStats] = OrderedDict()
        self.stem_spiking: bool | None = None

    # ---------------------------------------------------------------- rows
    def _add(self, path: str, kind: str, shape, macs: float, counts: torch.Tensor | None,
             operand_nonzero: torch.Tensor | None = None) -> None:
        """Accumulate one call of module ``path`` (or attention product ``<branch>.kv``…);
        ``counts``: additions per entry of the driving spike operand (its spike counts;
        ``|2k - D|`` for SDHA's 2Q-1), None for a real-valued input."""
        name = self.row_name(path)
        row = self.rows.get(name)
        if row is None:
            row = self.rows[name] = dict(kind=kind, shape=tuple(shape), input="real", macs=0.0,
                                         sops=0.0, nnz=0.0, numel=0.0, count_sum=0.0,
                                         stage=self.stage_of(path))
        row["macs"] += macs
        if counts is None:
            return
        row["input"] = "spike"
        nz = counts != 0 if operand_nonzero is None else operand_nonzero
        nnz, numel = float(nz.sum()), float(counts.numel())
        count_sum = float(counts.abs().sum())
        row["nnz"] += nnz
        row["numel"] += numel
        row["count_sum"] += count_sum
        row["sops"] += macs * count_sum / numel

    def _input_counts(self, name: str, mod: nn.Module, x: torch.Tensor,
                      unit: float | None) -> torch.Tensor | None:
        if unit is not None:
            return spike_counts(x, unit)
        is_stem = name == self.stem_name or (self.stem_name is None and self.stem_spiking is None)
        if is_stem:
            mode = self.input_is_spikes
            if mode is False:
                counts = None
            elif mode is True:
                counts = spike_counts(x, 1.0)
                if counts is None:
                    raise ValueError(f"input_is_spikes=True but the input of {name} is not "
                                     f"non-negative integer spike counts")
            else:  # auto: binary frames, or non-negative integer event counts with 2 channels
                counts = spike_counts(x, 1.0, max_count=1)
                cin = getattr(mod, "in_channels", getattr(mod, "in_features", None))
                if counts is None and cin == 2:
                    counts = spike_counts(x, 1.0)
            self.stem_spiking = counts is not None
            return counts
        if self.spike_max is None:  # an ANN: no spikes anywhere
            return None
        # not from a neuron: spikes only if the values say so; an all-zero tensor stays real
        # (e.g. SepConv's dwconv output when nothing fired: the dense layer still runs)
        counts = spike_counts(x, 1.0 / self.spike_max, max_count=self.spike_max)
        return counts if counts is not None and bool(counts.any()) else None

    def on_layer(self, name, mod, x, out, unit) -> None:
        if isinstance(mod, nn.Linear):
            kind = "linear"
            macs = out.numel() * mod.in_features
        else:
            k = math.prod(mod.kernel_size)
            kind = "dwconv" if mod.groups > 1 and mod.groups == mod.in_channels else "conv"
            macs = out.numel() * (mod.in_channels // mod.groups) * k
        counts = self._input_counts(name, mod, x, unit)
        self._add(name, kind, x.shape, macs / self.batch, counts)

    def on_attention(self, ops: AttentionOperands) -> None:
        att = ops.module
        T, B, C, H, W = ops.q.shape
        heads, d = att.heads, C // att.heads
        tokens = T * B * H * W                       # all tokens of all groups
        n = {"joint": T * H * W, "spatial": H * W, "temporal": T}[ops.grouping]
        shape = {"joint": (B, heads, T * H * W, d), "spatial": (T, B, heads, H * W, d),
                 "temporal": (B, H * W, heads, T, d)}[ops.grouping]
        prefix = f"{ops.name}."
        if att.attention == "softmax":
            macs = tokens * C * n / self.batch       # n²·d per head and group, = N·C·n overall
            self._add(prefix + "qk", "Q K^T", shape, macs, None)
            self._add(prefix + "av", "A V", shape, macs, None)
            return
        macs = tokens * C * d / self.batch           # n·d² per head and group, = N·C·d overall
        uq, _, uv = ops.units
        v_counts = spike_counts(ops.v, uv) if uv is not None else None
        self._add(prefix + "kv", "K^T V", shape, macs, v_counts)
        q_counts = spike_counts(ops.q, uq) if uq is not None else None
        if q_counts is not None and att.attention == "hamming":
            sign = (2 * ops.q.double() - 1) / uq     # 2Q-1 in spike units: ±1 for binary spikes
            self._add(prefix + "qkv", "Q (K^T V)", shape, macs, sign.round(),
                      operand_nonzero=sign != 0)
        else:
            self._add(prefix + "qkv", "Q (K^T V)", shape, macs, q_counts)

    def on_neuron(self, name, mod, out, unit) -> None:
        counts = torch.round(out.detach().double() / unit)     # [T, B, ...]
        T = out.shape[0]
        fired = counts != 0
        nnz = float(fired.sum())
        per_step = fired.reshape(T, -1).double().mean(1).tolist()
        sample = counts[:, 0].reshape(T, -1) if counts.dim() > 2 else counts.reshape(T, -1)
        idx = torch.linspace(0, sample.shape[1] - 1, min(self.raster_neurons, sample.shape[1]))
        raster = sample[:, idx.round().long()].to(torch.int16).cpu().numpy()
        self.neurons[name] = NeuronStats(
            self.row_name(name), self.stage_of(name), tuple(out.shape), int(mod.spike_max),
            nnz / counts.numel(), float(counts.sum()) / nnz if nnz else 0.0, per_step, raster)

    # ---------------------------------------------------------------- result
    def rows_out(self) -> list[LayerEnergy]:
        out = []
        for name, r in self.rows.items():
            spike = r["input"] == "spike"
            rate = r["nnz"] / r["numel"] if spike and r["numel"] else 0.0
            mean_count = r["count_sum"] / r["nnz"] if spike and r["nnz"] else 0.0
            energy = r["sops"] * self.e_ac if spike else r["macs"] * self.e_mac
            out.append(LayerEnergy(name, r["stage"], r["kind"], r["shape"], r["input"], rate,
                                   mean_count if spike else 0.0, r["macs"],
                                   r["sops"] if spike else 0.0, energy))
        return out


def calibrate_bn(model: nn.Module, video: torch.Tensor) -> nn.Module:
    """Set every BatchNorm's running statistics to those of ``video`` (in place; returns model).

    For random-weight profiling: freshly initialised BN layers (mean 0, variance 1) leave a
    spiking network almost silent in eval mode, which says nothing about firing rates. One
    train-mode pass without gradients with cumulative averaging (``momentum=None``) makes
    each BN normalise its actual input, as after training. Weights are not changed.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
           and m.track_running_stats]
    saved = [(m, m.momentum) for m in bns]
    was_training = model.training
    try:
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
        model.train()
        with torch.no_grad():
            model(video)
    finally:
        for m, mom in saved:
            m.momentum = mom
        model.train(was_training)
    return model


def profile(model: nn.Module, video: torch.Tensor, e_mac: float = E_MAC, e_ac: float = E_AC,
            input_is_spikes: bool | str = "auto", fold: bool = True,
            raster_neurons: int = 32) -> EnergyReport:
    """Profile one forward pass of ``model`` on ``video`` (public ``[B, T, C, H, W]``).

    Args:
        model: a SpikeVideoFormer (or any module made of conv/linear layers, spiking neurons
            and ``layers.SpikeAttention``). It is not modified; it runs in eval mode without
            gradients (its train/eval mode is restored).
        video: the input, batch first (``[B, T, C, H, W]`` for a SpikeVideoFormer); energies
            are per clip (divided by B).
        e_mac: joules per MAC (45 nm default, docs/design.md §5.1).
        e_ac: joules per accumulate (45 nm default, docs/design.md §5.1).
        input_is_spikes: ``"auto"`` treats the input as spikes when it is binary, or
            non-negative integers with 2 channels (event frames); True/False force it. A
            spike-fed stem costs ACs (a value k counts k additions).
        fold: profile the deployed network ``deploy.fold(model)`` (default; RepConv = one 3×3
            conv on spikes, BN absorbed) instead of the training graph.
        raster_neurons: neurons per spiking layer kept for the spike raster.

    Returns an :class:`EnergyReport`; ``report.total_energy_mj`` is the energy of one clip.
    """
    if input_is_spikes not in ("auto", True, False):
        raise ValueError(f"input_is_spikes must be 'auto', True or False, got {input_is_spikes!r}")
    if not isinstance(video, torch.Tensor) or video.dim() < 2:
        raise ValueError("video must be a batch-first tensor, e.g. [B, T, C, H, W]")
    from ..deploy.fold import dense_repconvs, fold as fold_model, is_folded

    # the energy model counts each folded RepConv as one 3×3 conv on spikes (the dense fold),
    # also where the deployed model runs it factorised (FusedRepConv) for speed
    net = (fold_model(model, integer_spikes=False, repconv="dense") if fold and not is_folded(model)
           else dense_repconvs(model))
    stem = next(iter(stem_layers(net)), None)
    batch = int(video.shape[0])
    prof = _Profiler(net, batch, e_mac, e_ac, model_spike_max(net), input_is_spikes, stem,
                     raster_neurons)
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad(), Tracer(net, prof.on_layer, prof.on_neuron, prof.on_attention):
            net(video)
    finally:
        net.train(was_training)
    frames = int(video.shape[1]) if video.dim() in (3, 5) else 1  # [B, T, ...] or an image
    return EnergyReport(prof.rows_out(), list(prof.neurons.values()), e_mac, e_ac,
                        tuple(video.shape), batch, frames, bool(fold or is_folded(model)),
                        bool(prof.stem_spiking))
