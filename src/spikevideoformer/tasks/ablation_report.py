"""Files written by ``svf ablate``: per-run and summary CSV, a Markdown table, a bar chart."""
from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict
from pathlib import Path

from ..atomic import save_figure, write_text
from .ablations import AblationRun, markdown_table, summarize

__all__ = ["write_outputs"]


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_outputs(runs: list[AblationRun], out_dir: str | Path, num_classes: int,
                  title: str = "svf_tiny on MovingDigits, equal budget") -> dict[str, Path]:
    """Write ``runs.csv``, ``summary.csv``, ``summary.md`` and ``ablations.png`` atomically.

    The chart shows, per variant, the final and the mean-over-epochs val accuracy (mean ± std
    over seeds, each seed as a dot) against chance = 1 / ``num_classes``.
    """
    if not runs:
        raise ValueError("write_outputs needs at least one run")
    out = Path(out_dir)
    rows = summarize(runs)
    paths = {"runs": write_text(out / "runs.csv", _csv([asdict(r) for r in runs])),
             "summary": write_text(out / "summary.csv", _csv(rows)),
             "markdown": write_text(out / "summary.md", markdown_table(rows) + "\n")}

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(rows) + 2), 4.2))
    w = 0.38
    for k, (key, label, color) in enumerate((("", "final val acc", "tab:blue"),
                                             ("auc_", "mean val acc over epochs", "tab:orange"))):
        xs = [i + (k - 0.5) * w for i in range(len(rows))]
        ax.bar(xs, [100 * r[f"{key}mean"] for r in rows], w, label=label, color=color, alpha=0.8,
               yerr=[0 if math.isnan(r[f"{key}std"]) else 100 * r[f"{key}std"] for r in rows],
               capsize=3)
        attr = "mean_val_acc" if key else "val_acc"
        for x, r in zip(xs, rows):
            ys = [100 * getattr(run, attr) for run in runs if run.variant == r["variant"]]
            ax.plot([x] * len(ys), ys, "k.", ms=3)
    ax.set_xticks(list(range(len(rows))), [r["variant"] for r in rows], rotation=25, ha="right",
                  fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 105)
    ax.axhline(100 / num_classes, color="grey", ls=":", lw=1,
               label=f"chance ({num_classes} classes)")
    ax.legend(fontsize=8, loc="lower left")
    seeds = sorted({r.seed for r in runs})
    ax.set_title(f"{title}; mean ± std over seeds {seeds}", fontsize=9)
    fig.tight_layout()
    paths["png"] = save_figure(fig, out / "ablations.png", dpi=110)
    plt.close(fig)
    return paths
