"""PNG figures of an :class:`~spikevideoformer.analysis.energy.EnergyReport` (matplotlib, Agg).

* :func:`plot_stage_energy` — energy per stage, MAC (real-input) and AC (spike) parts stacked;
* :func:`plot_firing_rates` — firing rate of every spiking layer, coloured by stage;
* :func:`plot_spike_raster` — spikes of a few neurons of a few layers over the T steps.

Every function writes its file atomically (temporary file, then rename) and returns the path.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from ..atomic import save_figure
from .energy import EnergyReport

__all__ = ["plot_stage_energy", "plot_firing_rates", "plot_spike_raster", "raster_layers"]

_STAGE_COLOURS = {"stem": "#7f7f7f", "stage1": "#1f77b4", "stage2": "#2ca02c",
                  "stage3": "#d62728", "stage4": "#9467bd", "head": "#8c564b", "other": "#bcbd22"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> Path:
    try:
        return save_figure(fig, path, dpi=120, bbox_inches="tight")
    finally:
        _pyplot().close(fig)


def plot_stage_energy(report: EnergyReport, path: str | os.PathLike, title: str | None = None) -> Path:
    """Bar chart of energy per stage (mJ per clip): MAC part (real inputs) + AC part (spikes)."""
    plt = _pyplot()
    stages = [s for s in report.by_stage().values() if s.energy_j > 0 or s.stage != "other"]
    names = [s.stage for s in stages]
    mac = [s.mac_energy_j * 1e3 for s in stages]
    ac = [s.ac_energy_j * 1e3 for s in stages]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(names, mac, color="#ff7f0e", label=f"MAC (real input, {report.e_mac * 1e12:.1f} pJ)")
    ax.bar(names, ac, bottom=mac, color="#1f77b4", label=f"AC (spikes, {report.e_ac * 1e12:.1f} pJ)")
    for i, s in enumerate(stages):
        ax.text(i, s.energy_mj, f"{s.energy_mj:.3g}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("energy per clip (mJ)")
    ax.set_title(title or f"energy per stage, total {report.total_energy_mj:.4g} mJ "
                          f"(T={report.frames})")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_firing_rates(report: EnergyReport, path: str | os.PathLike, title: str | None = None) -> Path:
    """Firing rate of every spiking layer in call order (bars coloured by stage)."""
    plt = _pyplot()
    neurons = report.neurons
    fig, ax = plt.subplots(figsize=(max(7, len(neurons) * 0.09), 4))
    xs = range(len(neurons))
    ax.bar(xs, [n.rate * n.mean_count for n in neurons],
           color=[_STAGE_COLOURS.get(n.stage, "#000000") for n in neurons], width=0.85)
    seen = set()
    for i, n in enumerate(neurons):  # one legend entry and one tick per stage
        if n.stage not in seen:
            seen.add(n.stage)
            ax.bar([i], [0], color=_STAGE_COLOURS.get(n.stage, "#000000"), label=n.stage)
    ax.set_xlabel("spiking layer (call order)")
    ax.set_ylabel("spikes per neuron per step")
    ax.set_title(title or f"firing rates, mean {report.mean_firing_rate:.3f}")
    ax.set_xlim(-1, max(len(neurons), 1))
    if neurons:
        ax.legend(fontsize=8, ncol=3)
    return _save(fig, path)


def raster_layers(report: EnergyReport, count: int = 4) -> list[str]:
    """Names of ``count`` spiking layers spread over the network (first of each stage first)."""
    names = [n.name for n in report.neurons]
    firsts, seen = [], set()
    for n in report.neurons:
        if n.stage not in seen:
            seen.add(n.stage)
            firsts.append(n.name)
    picked = [n for n in firsts if n in names][:count]
    for n in names[:: max(1, len(names) // max(count, 1))]:
        if len(picked) >= count:
            break
        if n not in picked:
            picked.append(n)
    return sorted(picked, key=names.index)


def plot_spike_raster(report: EnergyReport, path: str | os.PathLike,
                      layers: Sequence[str] | None = None, title: str | None = None) -> Path:
    """Spike raster (neurons × time steps) of sample 0 for a few spiking layers."""
    plt = _pyplot()
    by_name = {n.name: n for n in report.neurons}
    layers = list(layers) if layers is not None else raster_layers(report)
    if not layers:
        raise ValueError("the report has no spiking layers to draw")
    fig, axes = plt.subplots(1, len(layers), figsize=(3.2 * len(layers), 3.6), squeeze=False)
    for ax, name in zip(axes[0], layers):
        n = by_name[name]
        r = n.raster.T  # [neurons, T]
        ax.imshow(r, aspect="auto", interpolation="nearest", cmap="Greys",
                  vmin=0, vmax=max(1, n.spike_max))
        ax.set_xlabel("time step t")
        ax.set_ylabel("neuron")
        ax.set_title(f"{name}\nrate {n.rate:.3f}", fontsize=8)
        ax.set_xticks(range(r.shape[1]))
    fig.suptitle(title or "spike raster (sample 0, evenly spaced neurons)", fontsize=10, y=1.06)
    return _save(fig, path)
