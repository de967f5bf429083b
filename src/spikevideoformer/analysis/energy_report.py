"""Result types of the energy profile (docs/design.md §5): per-layer rows, neuron firing
statistics, per-stage sums, and :class:`EnergyReport` with its text table, CSV and JSON output.

:func:`spikevideoformer.analysis.energy.profile` builds them.
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

from ..atomic import write_text
from ._trace import STAGES

__all__ = ["LayerEnergy", "NeuronStats", "StageEnergy", "EnergyReport"]


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
