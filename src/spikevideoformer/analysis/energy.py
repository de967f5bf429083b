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
"""
from __future__ import annotations

import csv
import io
import math
import os
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch import nn

from ..atomic import write_text
from ._trace import STAGES, STEM_NAME, AttentionOperands, Tracer, model_spike_max, spike_counts, stage_of

__all__ = ["E_MAC", "E_AC", "LayerEnergy", "NeuronStats", "StageEnergy", "EnergyReport", "profile",
           "calibrate_bn"]

E_MAC = 4.6e-12  # J per multiply-accumulate, 45 nm (docs/design.md §5.1)
E_AC = 0.9e-12   # J per accumulate (one spike-driven addition), 45 nm


@dataclass
class LayerEnergy:
    """One row: a conv/linear layer or an attention product (totals per clip, over all T)."""

    name: str
    stage: str
    kind: str                 # conv, dwconv, linear, "K^T V", "Q (K^T V)", "Q K^T", "A V"
    input_shape: tuple
    input: str                # "spike" or "real"
    rate: float               # fraction of non-zero input entries (spike inputs)
    mean_count: float         # mean spike value of the non-zero entries (1 for binary)
    macs: float               # dense MACs
    sops: float               # synaptic operations = rate × mean_count × MACs (0 for real inputs)
    energy_j: float

    @property
    def effective_rate(self) -> float:
        return self.rate * self.mean_count


@dataclass
class NeuronStats:
    """Firing statistics of one spiking-neuron layer."""

    name: str
    stage: str
    shape: tuple              # output shape [T, B, ...]
    spike_max: int
    rate: float               # fraction of (neuron, step) pairs that fire
    mean_count: float         # mean spike value when firing (1 for binary)
    rate_per_step: list       # firing rate at each time step t = 0..T-1
    raster: np.ndarray = field(repr=False)  # [T, n] spike counts of n neurons of sample 0


@dataclass
class StageEnergy:
    stage: str
    macs: float
    sops: float
    mac_energy_j: float       # from real-input layers
    ac_energy_j: float        # from spike-fed layers

    @property
    def energy_j(self) -> float:
        return self.mac_energy_j + self.ac_energy_j

    @property
    def energy_mj(self) -> float:
        return self.energy_j * 1e3


def _fmt_shape(shape: Iterable[int]) -> str:
    return "x".join(str(int(s)) for s in shape)


@dataclass
class EnergyReport:
    """Result of :func:`profile`: per-layer rows, per-neuron firing statistics and totals."""

    layers: list
    neurons: list
    e_mac: float
    e_ac: float
    input_shape: tuple        # public [B, T, C, H, W]
    batch: int
    frames: int
    folded: bool
    input_is_spikes: bool

    # ------------------------------------------------------------------ totals
    @property
    def total_macs(self) -> float:
        return float(sum(r.macs for r in self.layers))

    @property
    def total_sops(self) -> float:
        return float(sum(r.sops for r in self.layers))

    @property
    def mac_energy_j(self) -> float:
        return float(sum(r.energy_j for r in self.layers if r.input == "real"))

    @property
    def ac_energy_j(self) -> float:
        return float(sum(r.energy_j for r in self.layers if r.input == "spike"))

    @property
    def total_energy_j(self) -> float:
        return self.mac_energy_j + self.ac_energy_j

    @property
    def total_energy_mj(self) -> float:
        """Energy of one clip (all T frames) in millijoules."""
        return self.total_energy_j * 1e3

    @property
    def mean_firing_rate(self) -> float:
        """Firing rate over all neurons and steps of all spiking layers."""
        num = sum(n.rate * math.prod(n.shape) for n in self.neurons)
        den = sum(math.prod(n.shape) for n in self.neurons)
        return num / den if den else 0.0

    def by_stage(self) -> "OrderedDict[str, StageEnergy]":
        """Sums per stage (stem, stage1..4, head; "other" for modules outside the backbone)."""
        out: OrderedDict[str, StageEnergy] = OrderedDict()
        names = list(STAGES) + sorted({r.stage for r in self.layers} - set(STAGES))
        for s in names:
            rows = [r for r in self.layers if r.stage == s]
            if not rows and s not in STAGES:
                continue
            out[s] = StageEnergy(
                s, float(sum(r.macs for r in rows)), float(sum(r.sops for r in rows)),
                float(sum(r.energy_j for r in rows if r.input == "real")),
                float(sum(r.energy_j for r in rows if r.input == "spike")))
        return out

    # ------------------------------------------------------------------ output
    def summary(self) -> str:
        """Totals and per-stage sums as a short text block."""
        B, T = self.batch, self.frames
        lines = [
            f"input {_fmt_shape(self.input_shape)} (B={B}, T={T}); energy per clip; "
            f"E_MAC={self.e_mac * 1e12:.2f} pJ, E_AC={self.e_ac * 1e12:.2f} pJ (45 nm); "
            f"{'folded (deployed)' if self.folded else 'unfolded'} network; "
            f"input is {'spikes' if self.input_is_spikes else 'real-valued'}",
            f"{'stage':<8} {'GMACs':>10} {'GSOPs':>10} {'MAC mJ':>10} {'AC mJ':>10} {'total mJ':>10}",
        ]
        for s in self.by_stage().values():
            lines.append(f"{s.stage:<8} {s.macs / 1e9:>10.4f} {s.sops / 1e9:>10.4f} "
                         f"{s.mac_energy_j * 1e3:>10.4f} {s.ac_energy_j * 1e3:>10.4f} "
                         f"{s.energy_mj:>10.4f}")
        lines.append(f"{'total':<8} {self.total_macs / 1e9:>10.4f} {self.total_sops / 1e9:>10.4f} "
                     f"{self.mac_energy_j * 1e3:>10.4f} {self.ac_energy_j * 1e3:>10.4f} "
                     f"{self.total_energy_mj:>10.4f}")
        lines.append(f"mean firing rate over {len(self.neurons)} spiking layers: "
                     f"{self.mean_firing_rate:.4f}")
        return "\n".join(lines)

    def table(self) -> str:
        """Per-layer table, then the summary (printable text)."""
        w = max([len(r.name) for r in self.layers] + [5])
        head = (f"{'layer':<{w}} {'stage':<6} {'kind':<10} {'input':<5} {'input shape':<20} "
                f"{'rate':>6} {'count':>5} {'MMACs':>10} {'MSOPs':>10} {'energy uJ':>10}")
        lines = [head, "-" * len(head)]
        for r in self.layers:
            spike = r.input == "spike"
            lines.append(
                f"{r.name:<{w}} {r.stage:<6} {r.kind:<10} {r.input:<5} "
                f"{_fmt_shape(r.input_shape):<20} "
                f"{(f'{r.rate:.3f}' if spike else '-'):>6} "
                f"{(f'{r.mean_count:.2f}' if spike else '-'):>5} {r.macs / 1e6:>10.3f} "
                f"{(f'{r.sops / 1e6:.3f}' if spike else '-'):>10} {r.energy_j * 1e6:>10.3f}")
        lines.append("-" * len(head))
        lines.append(self.summary())
        return "\n".join(lines)

    def to_csv(self, path: str | os.PathLike, what: str = "layers") -> Path:
        """Write ``layers`` (default), ``neurons`` or ``stages`` as CSV, atomically."""
        buf = io.StringIO()
        wr = csv.writer(buf)
        if what == "layers":
            wr.writerow(["name", "stage", "kind", "input", "input_shape", "rate", "mean_count",
                         "effective_rate", "macs", "sops", "energy_uj"])
            for r in self.layers:
                wr.writerow([r.name, r.stage, r.kind, r.input, _fmt_shape(r.input_shape),
                             f"{r.rate:.6g}", f"{r.mean_count:.6g}", f"{r.effective_rate:.6g}",
                             f"{r.macs:.0f}", f"{r.sops:.1f}", f"{r.energy_j * 1e6:.6g}"])
        elif what == "neurons":
            T = max((n.shape[0] for n in self.neurons), default=0)
            wr.writerow(["name", "stage", "shape", "spike_max", "rate", "mean_count"]
                        + [f"rate_t{t}" for t in range(T)])
            for n in self.neurons:
                wr.writerow([n.name, n.stage, _fmt_shape(n.shape), n.spike_max, f"{n.rate:.6g}",
                             f"{n.mean_count:.6g}"] + [f"{x:.6g}" for x in n.rate_per_step])
        elif what == "stages":
            wr.writerow(["stage", "macs", "sops", "mac_energy_mj", "ac_energy_mj", "energy_mj"])
            for s in self.by_stage().values():
                wr.writerow([s.stage, f"{s.macs:.0f}", f"{s.sops:.1f}", f"{s.mac_energy_j * 1e3:.6g}",
                             f"{s.ac_energy_j * 1e3:.6g}", f"{s.energy_mj:.6g}"])
            wr.writerow(["total", f"{self.total_macs:.0f}", f"{self.total_sops:.1f}",
                         f"{self.mac_energy_j * 1e3:.6g}", f"{self.ac_energy_j * 1e3:.6g}",
                         f"{self.total_energy_mj:.6g}"])
        else:
            raise ValueError(f"what must be 'layers', 'neurons' or 'stages', got {what!r}")
        return write_text(path, buf.getvalue())

    def to_dict(self) -> dict:
        """JSON-able summary (totals, stages, rows without rasters)."""
        return {
            "input_shape": list(self.input_shape), "batch": self.batch, "frames": self.frames,
            "e_mac": self.e_mac, "e_ac": self.e_ac, "folded": self.folded,
            "input_is_spikes": self.input_is_spikes, "total_macs": self.total_macs,
            "total_sops": self.total_sops, "total_energy_mj": self.total_energy_mj,
            "stages": {k: {"macs": v.macs, "sops": v.sops, "energy_mj": v.energy_mj}
                       for k, v in self.by_stage().items()},
            "layers": [asdict(r) for r in self.layers],
        }


# --------------------------------------------------------------------------- profiling
class _Profiler:
    def __init__(self, batch: int, e_mac: float, e_ac: float, spike_max: int | None,
                 input_is_spikes, stem_name: str | None, raster_neurons: int) -> None:
        self.batch, self.e_mac, self.e_ac = batch, e_mac, e_ac
        self.spike_max = spike_max
        self.input_is_spikes = input_is_spikes
        self.stem_name = stem_name
        self.raster_neurons = raster_neurons
        self.rows: OrderedDict[str, dict] = OrderedDict()
        self.neurons: OrderedDict[str, NeuronStats] = OrderedDict()
        self.stem_spiking: bool | None = None

    # ---------------------------------------------------------------- rows
    def _add(self, name: str, kind: str, shape, macs: float, counts: torch.Tensor | None,
             operand_nonzero: torch.Tensor | None = None) -> None:
        """Accumulate one call; ``counts``: additions per entry of the driving spike operand
        (its spike counts; ``|2k - D|`` for SDHA's 2Q-1), None for a real-valued input."""
        row = self.rows.get(name)
        if row is None:
            row = self.rows[name] = dict(kind=kind, shape=tuple(shape), input="real", macs=0.0,
                                         sops=0.0, nnz=0.0, numel=0.0, count_sum=0.0)
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
        prefix = f"{ops.name}.{'t_' if ops.core else ''}"
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
            name, stage_of(name), tuple(out.shape), int(mod.spike_max), nnz / counts.numel(),
            float(counts.sum()) / nnz if nnz else 0.0, per_step, raster)

    # ---------------------------------------------------------------- result
    def rows_out(self) -> list[LayerEnergy]:
        out = []
        for name, r in self.rows.items():
            spike = r["input"] == "spike"
            rate = r["nnz"] / r["numel"] if spike and r["numel"] else 0.0
            mean_count = r["count_sum"] / r["nnz"] if spike and r["nnz"] else 0.0
            energy = r["sops"] * self.e_ac if spike else r["macs"] * self.e_mac
            out.append(LayerEnergy(name, stage_of(name), r["kind"], r["shape"], r["input"], rate,
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
        e_mac, e_ac: joules per MAC / per accumulate (45 nm defaults, docs/design.md §5.1).
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
    from ..deploy.fold import fold as fold_model, is_folded

    net = fold_model(model, integer_spikes=False) if fold and not is_folded(model) else model
    names = {n for n, _ in net.named_modules()}
    stem = next((n for n in names if n == STEM_NAME or n.endswith("." + STEM_NAME)), None)
    batch = int(video.shape[0])
    prof = _Profiler(batch, e_mac, e_ac, model_spike_max(net), input_is_spikes, stem,
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
