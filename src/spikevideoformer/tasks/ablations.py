"""Small-scale reproduction of the paper's ablations (SPEC §4) on the embedded temporal task.

Every variant trains ``svf_tiny`` on MovingDigits with the same budget (clips × epochs) for
several seeds; the study reports mean ± std of the final validation accuracy. Variants:
attention (Hamming vs dot), space-time design (joint / spatial / factorized / hierarchical),
"no temporal state" (spatial attention, membranes reset every frame), attention scale
(1/(2C) vs 1/8 vs 1/sqrt(d)), and initialisation from a short T = 1 image pre-training on
single digit frames vs random init (the pre-training budget is extra, as ImageNet is in the paper).
"""
from __future__ import annotations

import csv
import io
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..atomic import save_figure, write_text
from ..data.moving_digits import DigitFrames
from ..engine.config import TrainConfig, load_config
from .classification.runner import fit_classifier, train_classification

__all__ = ["VARIANTS", "AblationRun", "run_ablations", "summarize", "write_outputs"]

VARIANTS: dict[str, list[str]] = {
    "hamming/joint (full)": [],
    "dot/joint": ["model.attention=dot"],
    "hamming/spatial (neuron-only time)": ["model.design=spatial"],
    "spatial, no temporal state": ["model.design=spatial", "model.temporal_state=false"],
    "hamming/factorized": ["model.design=factorized"],
    "hamming/hierarchical": ["model.design=hierarchical"],
    "scale 1/8": ["model.attention_scale=1/8"],
    "scale 1/sqrt(d)": ["model.attention_scale=1/sqrt(d)"],
    "image-pretrained init": [],  # + T = 1 pre-training on DigitFrames, see _pretrain
}


@dataclass
class AblationRun:
    variant: str
    seed: int
    val_acc: float
    best_val_acc: float
    seconds: float


def _pretrain(cfg: TrainConfig, out: Path, progress: bool) -> Path:
    """T = 1 digit-identity pre-training with the same model; returns its best checkpoint."""
    pre = load_config(cfg, [f"run.out_dir={out}", "model.num_classes=10", "data.num_frames=1",
                            f"optim.epochs={max(1, cfg.optim.epochs // 2)}"])
    n_train = cfg.data.train_samples or 2048
    kw = dict(size=cfg.data.size, seed=cfg.run.seed)
    train = DigitFrames("train", num_samples=n_train * cfg.data.num_frames, **kw)
    val = DigitFrames("val", num_samples=cfg.data.val_samples or 512, **kw)
    fit_classifier(pre, train, val, DigitFrames.classes, progress=progress)
    return out / "best"


def run_ablations(base: str | Path | TrainConfig, out_dir: str | Path, seeds=(0, 1, 2),
                  variants: list[str] | None = None, overrides: list[str] = (),
                  progress: bool = False, log: Callable[[str], None] = print) -> list[AblationRun]:
    """Train every (variant, seed) pair; returns one :class:`AblationRun` per training."""
    names = variants or list(VARIANTS)
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown ablation variant(s) {unknown}; choose from {list(VARIANTS)}")
    runs: list[AblationRun] = []
    for name in names:
        for seed in seeds:
            slug = "".join(c if c.isalnum() else "_" for c in name).strip("_")
            out = Path(out_dir) / slug / f"seed{seed}"
            cfg = load_config(base, list(overrides) + VARIANTS[name]
                              + [f"run.seed={seed}", f"run.out_dir={out}"])
            t0 = time.perf_counter()
            if name == "image-pretrained init":
                cfg = load_config(cfg, [f"model.init={_pretrain(cfg, out / 'pretrain', progress)}"])
            res = train_classification(cfg, progress=progress)
            run = AblationRun(name, seed, float(res["val_acc"]), float(res["best_metric"]),
                              time.perf_counter() - t0)
            runs.append(run)
            log(f"[ablate] {name:<36} seed {seed}: val_acc {run.val_acc:.3f} "
                f"(best {run.best_val_acc:.3f}) in {run.seconds:.0f}s")
    return runs


def summarize(runs: list[AblationRun]) -> list[dict[str, Any]]:
    """Mean ± sample std of the final val accuracy per variant (order of first appearance)."""
    rows = []
    for name in dict.fromkeys(r.variant for r in runs):
        accs = [r.val_acc for r in runs if r.variant == name]
        rows.append({"variant": name, "n": len(accs), "mean": statistics.fmean(accs),
                     "std": statistics.stdev(accs) if len(accs) > 1 else math.nan,
                     "min": min(accs), "max": max(accs)})
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| variant | seeds | val acc (mean ± std) | min | max |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['n']} | {100 * r['mean']:.1f} ± {100 * r['std']:.1f} "
                     f"| {100 * r['min']:.1f} | {100 * r['max']:.1f} |")
    return "\n".join(lines)


def write_outputs(runs: list[AblationRun], out_dir: str | Path) -> dict[str, Path]:
    """Write ``runs.csv``, ``summary.csv``, ``summary.md`` and ``ablations.png`` atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, rows in (("runs", [r.__dict__ for r in runs]), ("summary", summarize(runs))):
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
        paths[name] = write_text(out / f"{name}.csv", buf.getvalue())
    rows = summarize(runs)
    write_text(out / "summary.md", markdown_table(rows) + "\n")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 4))
    x = range(len(rows))
    ax.bar(x, [100 * r["mean"] for r in rows],
           yerr=[0 if math.isnan(r["std"]) else 100 * r["std"] for r in rows], capsize=4,
           color=["tab:blue" if i else "tab:green" for i in x])
    ax.set_xticks(list(x), [r["variant"] for r in rows], rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("val accuracy (%)")
    ax.set_ylim(0, 100)
    ax.axhline(100 / 4, color="grey", ls=":", lw=1, label="chance (4 classes)")
    ax.legend(fontsize=8)
    ax.set_title("svf_tiny on MovingDigits, equal budget, mean ± std over seeds")
    fig.tight_layout()
    paths["png"] = save_figure(fig, out / "ablations.png", dpi=110)
    plt.close(fig)
    return paths
