"""Why the spiking model trained worse than its ANN counterpart, and what zero-init changes.

Two parts (docs/design.md §7):

* ``--part grads`` (seconds): one train-mode forward/backward at initialisation of each model
  (spiking Integer-LIF D = 4 / binary LIF / ReLU+softmax ANN, default init vs zero-init of the
  residual branches) on one batch of a config's training data: the global gradient norm, the
  stage norms, and the fraction of parameter tensors (of those with a non-zero gradient)
  whose median |gradient| after clipping at ``optim.grad_clip`` is below AdamW's epsilon
  (1e-8) — tensors that clipping freezes.
* ``--part train`` (minutes): each model trained with the config's recipe for several seeds
  (``tasks.ablations.run_ablations``: worker processes, 1 thread each, finished runs reused);
  writes ``runs.csv``, ``summary.md`` and a curves PNG to ``--out``.

    python benchmarks/trainability.py --config seg_demo --part grads
    python benchmarks/trainability.py --config seg_demo --part train --seeds 0,1,2 --jobs 2 \
        --out runs/trainability-seg
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from spikevideoformer.analysis.grad_scale import STAGES, stage_of
from spikevideoformer.engine import seed_everything
from spikevideoformer.engine.named_configs import load_named_config
from spikevideoformer.machine import cpu_model
from spikevideoformer.models import zero_init_residual
from spikevideoformer.tasks.fit import build_loaders
from spikevideoformer.tasks.registry import get_task

ANN = ["model.neuron=relu", "model.attention=softmax"]
MODELS = {  # name → overrides of the base config
    "SNN, default init": ["model.zero_init_residual=false"],
    "SNN, zero-init": ["model.zero_init_residual=true"],
    "ANN, default init": ANN + ["model.zero_init_residual=false"],
    "ANN, zero-init": ANN + ["model.zero_init_residual=true"],
}
ADAM_EPS = 1e-8


def grads_at_init(config: str, overrides: list[str], seed: int) -> dict[str, float]:
    """Gradient statistics of one training batch at initialisation (see module docstring)."""
    cfg = load_named_config(config, overrides + [f"run.seed={seed}"])
    spec = get_task(cfg.run.task)
    seed_everything(seed)
    data = spec.build_data(cfg)
    model = spec.build_model(cfg, data)
    if cfg.model.zero_init_residual:  # as tasks.fit does
        zero_init_residual(model)
    task = spec.make_task(cfg, data)
    batch = next(iter(build_loaders(cfg, data)[0]))
    model.train()
    loss, _ = task.loss(task.forward(model, batch), batch)
    loss.backward()
    named = [(n, p.grad) for n, p in model.named_parameters() if p.grad is not None]
    norm = math.sqrt(sum(float(g.double().pow(2).sum()) for _, g in named))
    clip = min(1.0, (cfg.optim.grad_clip or math.inf) / norm)
    live = [g for _, g in named if bool(g.any())]  # zero-init: branch tensors get 0 at step 0
    frozen = sum(float(g.abs().median()) * clip < ADAM_EPS for g in live) / len(live)
    sq = dict.fromkeys(STAGES, 0.0)
    for n, g in named:
        sq[stage_of(model, n)] += float(g.double().pow(2).sum())
    return {"global": norm, "frozen": frozen, **{s: math.sqrt(v) for s, v in sq.items()}}


def part_grads(config: str, seeds: list[int], extra: list[str]) -> None:
    print(f"gradients at init, config {config}, seeds {seeds}, CPU: {cpu_model()}")
    print("| model | global norm | " + " | ".join(STAGES) + " | frozen by clip |")
    print("|---|---|" + "---|" * len(STAGES) + "---|")
    integer = load_named_config(config, extra).model.spike_max > 1
    rows = []  # (label, overrides): with Integer-LIF, each spiking model also with binary LIF
    for name, ovr in MODELS.items():
        if "SNN" in name and integer:
            rows.append((name + " (binary LIF)", ovr + ["model.spike_max=1"]))
        rows.append((name, ovr))
    for label, ovr in rows:
        runs = [grads_at_init(config, ovr + extra, s) for s in seeds]
        med = {k: sorted(r[k] for r in runs)[len(runs) // 2] for k in runs[0]}
        print(f"| {label} | {med['global']:.3g} | "
              + " | ".join(f"{med[s]:.3g}" for s in STAGES) + f" | {100 * med['frozen']:.0f} % |")


def part_train(config: str, seeds: list[int], jobs: int, out: str, extra: list[str]) -> None:
    from spikevideoformer.tasks.ablation_report import write_outputs
    from spikevideoformer.tasks.ablations import markdown_table, run_ablations, summarize
    cfg = load_named_config(config, extra)
    runs = run_ablations(cfg, out, seeds, MODELS, jobs=jobs)
    chance = get_task(cfg.run.task).chance(cfg)
    write_outputs(runs, out, chance, title=f"{config}: spiking vs ANN, default vs zero-init")
    print(f"config {config}, seeds {seeds}, CPU: {cpu_model()}")
    print(markdown_table(summarize(runs)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="seg_demo")
    ap.add_argument("--part", choices=("grads", "train"), default="grads")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=None)
    ap.add_argument("overrides", nargs="*", help="section.key=value applied to every model")
    args = ap.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.part == "grads":
        part_grads(args.config, seeds, args.overrides)
    else:
        part_train(args.config, seeds, args.jobs, args.out or f"runs/trainability-{Path(args.config).stem}",
                   args.overrides)


if __name__ == "__main__":
    main()
