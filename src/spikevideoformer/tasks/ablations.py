"""Small-scale reproduction of the paper's ablations (docs/design.md §4.4), several seeds, mean ± std.

Every variant trains the base config's model (default: ``svf_tiny`` on MovingDigits, config
``ablate``; a segmentation or pose config ablates that task) with the same budget for several
seeds; the study reports mean ± std of the task's main metric after the last epoch and of its
mean over all epochs (area under the validation curve: how early a variant learns).
Variants: attention (Hamming vs dot), space-time design (joint / spatial / factorized /
hierarchical), "no temporal state" (spatial attention, membranes reset every frame), attention
scale (1/(2C) vs 1/8 vs 1/sqrt(d)), and initialisation from a short T = 1 image pre-training on
single digit frames vs random init (the pre-training budget is extra, as ImageNet is in the paper).

A seed fixes the data and the initial weights, so variants are compared on the same clips.
Runs can execute in parallel worker processes (``jobs``); a finished run writes
``ablation_run.json`` in its directory and is reused (not retrained) when the study is run again
with the same settings, so an interrupted study continues where it stopped.
"""
from __future__ import annotations

import json
import math
import statistics
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..atomic import write_json
from ..data.moving_digits import DigitFrames
from ..engine.config import TrainConfig, load_config, to_dict
from ..engine.logger import read_jsonl
from .datasets import TaskData
from .fit import fit_task
from .registry import get_task

__all__ = ["VARIANTS", "PAPER_VARIANTS", "GRID_VARIANTS", "CONFIG_VARIANTS", "HEADLINE_VARIANTS",
           "curves", "headline_budget", "AblationRun", "run_ablations", "summarize",
           "markdown_table", "metric_display"]

FULL = "hamming/joint (full)"
ANN = "ANN counterpart"
# the study of the 16x16 / 32x32 configs (before the dot x design grid was added)
_PAPER: dict[str, list[str]] = {
    FULL: [],
    "dot/joint": ["model.attention=dot"],
    "hamming/spatial (neuron-only time)": ["model.design=spatial"],
    "spatial, no temporal state": ["model.design=spatial", "model.temporal_state=false"],
    "hamming/factorized": ["model.design=factorized"],
    "hamming/hierarchical": ["model.design=hierarchical"],
    "scale 1/8": ["model.attention_scale=1/8"],
    "scale 1/sqrt(d)": ["model.attention_scale=1/sqrt(d)"],
    "image-pretrained init": [],  # + T = 1 pre-training on DigitFrames, see _pretrain
}
VARIANTS: dict[str, list[str]] = {
    **_PAPER,
    "dot/spatial": ["model.attention=dot", "model.design=spatial"],
    "dot/factorized": ["model.attention=dot", "model.design=factorized"],
    "dot/hierarchical": ["model.attention=dot", "model.design=hierarchical"],
    # training-recipe options (docs/design.md §7.4-7.5): the forward is the full model's
    "per-step loss": ["optim.per_step_loss=true"],
    "surrogate alpha 2": ["model.surrogate_alpha=2.0"],
    "surrogate alpha 8": ["model.surrogate_alpha=8.0"],
    "bn momentum 0.01": ["model.bn_momentum=0.01"],
    # the real-valued counterpart on the same data and recipe (ReLU, softmax over all tokens)
    ANN: ["model.neuron=relu", "model.attention=softmax"],
}
PRETRAINED = "image-pretrained init"
PAPER_VARIANTS = list(_PAPER)
# the full grid: {Hamming, dot} x {joint, spatial, factorized, hierarchical}, scale 1/8,
# image-pretrained init, and the no-temporal-state control (frame-order blind). The ANN
# counterpart (also frame-order blind) is run on request: it is not in the shipped table.
GRID_VARIANTS = [FULL, "hamming/spatial (neuron-only time)", "hamming/factorized",
                 "hamming/hierarchical", "dot/joint", "dot/spatial", "dot/factorized",
                 "dot/hierarchical", "scale 1/8", PRETRAINED, "spatial, no temporal state"]
# variants ``svf ablate`` trains by default, per shipped config (others: PAPER_VARIANTS)
CONFIG_VARIANTS = {"relay_ablate": GRID_VARIANTS}

# ``svf ablate --quick``: the paper's two headline comparisons (Hamming vs dot, joint vs spatial)
# on the headline budget: two thirds of the epochs and half the validation set (ablate config:
# 8 of 12 epochs, 504 steps). The no-temporal-state control is left out: it is frame-order
# blind, at chance by construction.
HEADLINE_VARIANTS = [FULL, "dot/joint", "hamming/spatial (neuron-only time)"]


def headline_budget(cfg: TrainConfig) -> list[str]:
    """Budget overrides of ``svf ablate --quick`` for a base config."""
    out = [f"optim.epochs={max(1, round(cfg.optim.epochs * 2 / 3))}"]
    if cfg.data.val_samples:
        out.append(f"data.val_samples={max(1, cfg.data.val_samples // 2)}")
    return out


@dataclass
class AblationRun:
    variant: str
    seed: int
    final: float             # the task's main metric after the last epoch (e.g. val_acc)
    best: float
    mean_over_epochs: float  # area under the validation curve: how early a variant learns
    epochs: int
    seconds: float
    skipped_steps: int = 0   # updates skipped for a non-finite gradient norm
    metric: str = "val_acc"
    energy_mj: float = math.nan    # energy per clip of the best checkpoint (analysis.profile)
    firing_rate: float = math.nan  # its mean firing rate over all spiking neurons

# field names of ablation_run.json files written before the metric became task-generic
_OLD_FIELDS = {"val_acc": "final", "best_val_acc": "best", "mean_val_acc": "mean_over_epochs"}


def run_dir_name(variant: str) -> str:
    """The directory of a variant's runs inside a study (``<out>/<run_dir_name>/seed<k>/``)."""
    return "".join(c if c.isalnum() else "_" for c in variant).strip("_")


def parse_variants(text: str, known=None) -> list[str]:
    """Comma-separated variant names; a name that itself contains a comma (e.g. "spatial, no
    temporal state") is recognised by joining pieces until they form a known name.
    Raises ``ValueError`` naming the unknown piece."""
    known = VARIANTS if known is None else known
    out, piece = [], ""
    for part in text.split(","):
        piece = f"{piece},{part}" if piece else part
        if piece.strip() in known:
            out.append(piece.strip())
            piece = ""
    if piece.strip() or not out:
        bad = piece.strip() or text
        raise ValueError(f"unknown variant(s) {bad!r}; choose from {list(known)}")
    return out


def _pretrain(cfg: TrainConfig, out: Path, progress: bool) -> Path:
    """T = 1 digit-identity pre-training with the same model; returns its best checkpoint."""
    pre = load_config(cfg, [f"run.out_dir={out}", "model.num_classes=10", "data.num_frames=1",
                            f"optim.epochs={max(1, cfg.optim.epochs // 2)}",
                            f"data.batch_size={max(32, cfg.data.batch_size)}",
                            "run.task=classification", "model.init=null"])
    n_train = cfg.data.train_samples or 2048
    kw = dict(size=cfg.data.size, seed=cfg.run.seed)
    train = DigitFrames("train", num_samples=n_train * cfg.data.num_frames, **kw)
    val = DigitFrames("val", num_samples=cfg.data.val_samples or 512, **kw)
    fit_task(pre, get_task("classification"), progress, data=TaskData(train, val, DigitFrames.classes))
    return out / "best"


def _last_run_records(metrics_jsonl: Path, metric: str) -> list[dict[str, Any]]:
    """Per-epoch records (with ``metric``) of the most recent run logged in ``metrics.jsonl``
    (the log is append-only, so an earlier run in the same directory is cut off at its last
    epoch 1)."""
    records = [r for r in read_jsonl(metrics_jsonl) if metric in r]
    starts = [i for i, r in enumerate(records) if r.get("epoch") == 1]
    return records[starts[-1] if starts else 0:]


def _train_one(spec: dict[str, Any]) -> dict[str, Any]:
    """Train one (variant, seed); runs in the calling process or in a worker process."""
    if spec.get("threads"):
        import torch
        torch.set_num_threads(spec["threads"])
    out = Path(spec["out"])
    cfg = load_config(spec["base"], spec["overrides"])
    t0 = time.perf_counter()
    if spec["variant"] == PRETRAINED:
        cfg = load_config(cfg, [f"model.init={_pretrain(cfg, out / 'pretrain', spec['progress'])}"])
    res = fit_task(cfg, get_task(cfg.run.task), progress=spec["progress"])
    metric = res["main_metric"]
    records = _last_run_records(out / "metrics.jsonl", metric)
    seconds = time.perf_counter() - t0
    energy_mj, rate = _energy(cfg, out / "best")
    run = AblationRun(spec["variant"], spec["seed"], float(res[metric]), float(res["best_metric"]),
                      statistics.fmean(float(r[metric]) for r in records), len(records),
                      seconds, sum(int(r.get("nonfinite_grad_steps", 0)) for r in records), metric,
                      energy_mj, rate)
    write_json(out / "ablation_run.json", {"spec": _identity(spec), "run": asdict(run)})
    return asdict(run)


def _energy(cfg: TrainConfig, checkpoint: Path, clips: int = 4) -> tuple[float, float]:
    """Energy per clip (mJ, 45 nm) and mean firing rate of the deployed (folded) network of
    ``checkpoint`` on the first ``clips`` validation clips (docs/energy.md)."""
    import torch

    from ..analysis.energy import profile
    from ..engine.checkpoint import load_model_weights
    spec = get_task(cfg.run.task)
    data = spec.build_data(cfg)
    model = spec.build_model(cfg, data)
    load_model_weights(checkpoint, model)
    video = torch.stack([data.val[i][0] for i in range(min(clips, len(data.val)))])
    report = profile(model, video)
    return float(report.total_energy_mj), float(report.mean_firing_rate)


def curves(runs: Sequence[AblationRun], out_dir: str | Path) -> dict[tuple[str, int], list[float]]:
    """Per (variant, seed): the main metric after every epoch, read from the run's metrics log
    (runs whose directory is gone are left out)."""
    out = {}
    for r in runs:
        log = Path(out_dir) / run_dir_name(r.variant) / f"seed{r.seed}" / "metrics.jsonl"
        if log.is_file():
            out[(r.variant, r.seed)] = [float(x[r.metric]) for x in _last_run_records(log, r.metric)]
    return out


def _identity(spec: dict[str, Any]) -> dict[str, Any]:
    """What makes two runs the same experiment (the resolved config, variant, seed)."""
    return {"variant": spec["variant"], "seed": spec["seed"], "config": spec["config"]}


def _same(saved: Any, current: Any, default: Any) -> bool:
    """``saved == current``, where a config key added since the run was saved counts as equal
    when the current value is its default (a new key keeps old behaviour at its default)."""
    if isinstance(saved, dict) and isinstance(current, dict):
        default = default if isinstance(default, dict) else {}
        return all(k in current for k in saved) and all(
            _same(saved[k], current[k], default.get(k)) if k in saved
            else k in default and current[k] == default[k] for k in current)
    return saved == current


def _reusable(spec: dict[str, Any]) -> AblationRun | None:
    path = Path(spec["out"]) / "ablation_run.json"
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        current = json.loads(json.dumps(_identity(spec)))
        defaults = json.loads(json.dumps({"config": to_dict(TrainConfig())}))
        if _same(saved["spec"], current, defaults):
            return AblationRun(**{_OLD_FIELDS.get(k, k): v for k, v in saved["run"].items()})
    except (ValueError, KeyError, TypeError):
        pass
    return None


def run_ablations(base: str | Path | TrainConfig, out_dir: str | Path, seeds=(0, 1, 2),
                  variants: Sequence[str] | Mapping[str, Sequence[str]] | None = None, overrides: Sequence[str] = (),
                  progress: bool = False, jobs: int = 1, threads_per_job: int | None = None,
                  reuse: bool = True, log: Callable[[str], None] = print) -> list[AblationRun]:
    """Train every (variant, seed) pair; returns one :class:`AblationRun` per training, in
    (variant, seed) order.

    ``variants``: names from :data:`VARIANTS` (default: all), or a mapping of your own
    ``{name: [overrides]}``. ``jobs`` > 1 trains that many runs at once in worker processes, each with
    ``threads_per_job`` torch threads (default 1). With ``reuse``, a run whose directory holds
    a finished ``ablation_run.json`` for the same resolved config is read back, not retrained.
    """
    table = dict(variants) if isinstance(variants, Mapping) else VARIANTS  # name → overrides
    names = list(variants or VARIANTS)
    unknown = [v for v in names if v not in table]
    if unknown:
        raise ValueError(f"unknown ablation variant(s) {unknown}; choose from {list(table)}")
    if not seeds:
        raise ValueError("run_ablations needs at least one seed")
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    base_cfg = load_config(base, list(overrides))  # fail on a bad override before any training
    get_task(base_cfg.run.task)  # ... or an unknown task
    specs = []
    for name in names:
        for seed in seeds:
            out = Path(out_dir) / run_dir_name(name) / f"seed{seed}"
            ovr = list(table[name]) + [f"run.seed={seed}", f"run.out_dir={out}"]
            specs.append({"variant": name, "seed": seed, "out": str(out), "base": base_cfg,
                          "overrides": ovr, "progress": progress and jobs == 1,
                          "config": to_dict(load_config(base_cfg, ovr)),
                          "threads": threads_per_job or (1 if jobs > 1 else None)})

    done: dict[int, AblationRun] = {}
    trained = 0
    t0 = time.perf_counter()

    def finish(i: int, run: AblationRun, how: str) -> None:
        nonlocal trained
        done[i] = run
        eta = ""
        if how == "in":  # wall time per trained run so far × runs still to train
            trained += 1
            left = len(specs) - len(done)
            if left:
                eta = f", ~{(time.perf_counter() - t0) / trained * left / 60:.0f} min left"
        log(f"[ablate {len(done)}/{len(specs)}] {run.variant:<36} seed {run.seed}: "
            f"{run.metric} {run.final:.3f} (mean over epochs {run.mean_over_epochs:.3f}) "
            f"{how} {run.seconds:.0f}s{eta}")

    todo = []
    for i, spec in enumerate(specs):
        old = _reusable(spec) if reuse else None
        if old is not None:
            finish(i, old, "reused, trained in")
        else:
            todo.append(i)
    if jobs == 1:
        for i in todo:
            finish(i, AblationRun(**_train_one(specs[i])), "in")
    elif todo:
        with ProcessPoolExecutor(max_workers=min(jobs, len(todo)),
                                 mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(_train_one, specs[i]): i for i in todo}
            for fut in as_completed(futures):
                finish(futures[fut], AblationRun(**fut.result()), "in")
    return [done[i] for i in range(len(specs))]


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else math.nan)


def _nanmean(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return statistics.fmean(kept) if kept else math.nan


def metric_display(metric: str) -> tuple[str, float]:
    """Column label and multiplier for a main metric: fractions as %, pose errors in mm."""
    return (f"{metric} (mm)", 1.0) if "mpjpe" in metric else (f"{metric} %", 100.0)


def summarize(runs: list[AblationRun]) -> list[dict[str, Any]]:
    """Per variant (order of first appearance): mean ± sample std of the final metric and of
    its mean over epochs, min/max of the final metric, skipped steps and minutes trained."""
    rows = []
    for name in dict.fromkeys(r.variant for r in runs):
        sel = [r for r in runs if r.variant == name]
        finals = [r.final for r in sel]
        mean, std = _mean_std(finals)
        auc_mean, auc_std = _mean_std([r.mean_over_epochs for r in sel])
        rows.append({"variant": name, "metric": sel[0].metric, "n": len(finals), "mean": mean,
                     "std": std, "min": min(finals), "max": max(finals), "auc_mean": auc_mean,
                     "auc_std": auc_std, "skipped_steps": sum(r.skipped_steps for r in sel),
                     "minutes": sum(r.seconds for r in sel) / 60,
                     "energy_mj": _nanmean([r.energy_mj for r in sel]),
                     "firing_rate": _nanmean([r.firing_rate for r in sel])})
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    label, k = metric_display(rows[0]["metric"]) if rows else ("val_acc %", 100.0)

    def pm(mean: float, std: float) -> str:
        return f"{k * mean:.1f}" + ("" if math.isnan(std) else f" ± {k * std:.1f}")

    lines = [f"| variant | seeds | final {label} (mean ± std) | min | max "
             f"| mean over epochs | skipped steps | energy mJ/clip | firing rate |",
             "|---|---|---|---|---|---|---|---|---|"]

    def num(value: float, fmt: str) -> str:
        return "–" if math.isnan(value) else format(value, fmt)
    for r in rows:
        lines.append(f"| {r['variant']} | {r['n']} | {pm(r['mean'], r['std'])} "
                     f"| {k * r['min']:.1f} | {k * r['max']:.1f} "
                     f"| {pm(r['auc_mean'], r['auc_std'])} | {r['skipped_steps']} "
                     f"| {num(r.get('energy_mj', math.nan), '.4f')} "
                     f"| {num(r.get('firing_rate', math.nan), '.3f')} |")
    return "\n".join(lines)
