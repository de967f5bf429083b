"""Files written by ``svf ablate``: per-run and summary CSV, a Markdown table, a bar chart."""
from __future__ import annotations

import csv
import math
from dataclasses import MISSING, asdict, fields
from pathlib import Path

from ..atomic import save_figure, write_csv, write_text
from .ablations import AblationRun, markdown_table, metric_display, summarize

__all__ = ["write_outputs", "read_runs"]


def write_outputs(runs: list[AblationRun], out_dir: str | Path, chance: float | None = None,
                  title: str = "svf_tiny, equal budget",
                  curves: dict[tuple[str, int], list[float]] | None = None) -> dict[str, Path]:
    """Write ``runs.csv``, ``summary.csv``, ``summary.md`` and ``ablations.png`` atomically
    (and ``curves.png`` when ``curves`` is given).

    The chart shows, per variant, the final and the mean-over-epochs main metric (mean ± std
    over seeds, each seed as a dot), with a dotted line at ``chance`` when given. ``curves``
    maps ``(variant, seed)`` to the metric after every epoch (:func:`.ablations.curves`).
    """
    if not runs:
        raise ValueError("write_outputs needs at least one run")
    out = Path(out_dir)
    rows = summarize(runs)
    paths = {"runs": write_csv(out / "runs.csv", [asdict(r) for r in runs]),
             "summary": write_csv(out / "summary.csv", rows),
             "markdown": write_text(out / "summary.md", markdown_table(rows) + "\n")}

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(rows) + 2), 4.2))
    w = 0.38
    ylabel, scale = metric_display(runs[0].metric)
    for k, (key, label, color) in enumerate((("", "final", "tab:blue"),
                                             ("auc_", "mean over epochs", "tab:orange"))):
        xs = [i + (k - 0.5) * w for i in range(len(rows))]
        ax.bar(xs, [scale * r[f"{key}mean"] for r in rows], w, label=label, color=color,
               alpha=0.8, capsize=3,
               yerr=[0 if math.isnan(r[f"{key}std"]) else scale * r[f"{key}std"] for r in rows])
        attr = "mean_over_epochs" if key else "final"
        for x, r in zip(xs, rows):
            ys = [scale * getattr(run, attr) for run in runs if run.variant == r["variant"]]
            ax.plot([x] * len(ys), ys, "k.", ms=3)
    ax.set_xticks(list(range(len(rows))), [r["variant"] for r in rows], rotation=25, ha="right",
                  fontsize=8)
    ax.set_ylabel(ylabel)
    if scale == 100.0:
        ax.set_ylim(0, 105)
    if chance is not None:
        ax.axhline(scale * chance, color="grey", ls=":", lw=1, label="chance")
    ax.legend(fontsize=8, loc="lower left")
    seeds = sorted({r.seed for r in runs})
    ax.set_title(f"{title}; mean ± std over seeds {seeds}", fontsize=9)
    fig.tight_layout()
    paths["png"] = save_figure(fig, out / "ablations.png", dpi=110)
    plt.close(fig)
    if curves:
        paths["curves"] = _plot_curves(curves, out / "curves.png", ylabel, scale, chance, title)
    return paths


def _plot_curves(curves: dict[tuple[str, int], list[float]], path: Path, ylabel: str, scale: float,
                 chance: float | None, title: str) -> Path:
    """Learning curves: one panel per variant, one line per seed (metric after every epoch)."""
    import matplotlib.pyplot as plt
    names = list(dict.fromkeys(v for v, _ in curves))
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), sharex=True,
                             sharey=True, squeeze=False)
    for ax, name in zip(axes.flat, names):
        for (variant, seed), ys in sorted(curves.items(), key=lambda kv: kv[0][1]):
            if variant == name:
                ax.plot(range(1, len(ys) + 1), [scale * y for y in ys], marker=".", lw=1,
                        label=f"seed {seed}")
        if chance is not None:
            ax.axhline(scale * chance, color="grey", ls=":", lw=1)
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    axes[0][0].legend(fontsize=6)
    for ax in axes[-1]:
        ax.set_xlabel("epoch", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel, fontsize=8)
    fig.suptitle(f"{title}: validation curves", fontsize=9)
    fig.tight_layout()
    out = save_figure(fig, path, dpi=100)
    plt.close(fig)
    return out


def read_runs(path: str | Path) -> list[AblationRun]:
    """Read a ``runs.csv`` written by :func:`write_outputs` back into :class:`AblationRun` s."""
    types = {f.name: {"int": int, "float": float}.get(str(f.type), str) for f in fields(AblationRun)}
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    defaults = {f.name for f in fields(AblationRun) if f.default is not MISSING}
    missing = [k for k in types if rows and k not in rows[0] and k not in defaults]
    if missing:
        raise ValueError(f"{path}: not an ablation runs.csv (missing columns {missing})")
    return [AblationRun(**{k: types[k](v) for k, v in row.items() if k in types}) for row in rows]

