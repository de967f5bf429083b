"""Gradient scale at initialisation, per stage, for each ablation variant.

Explains which ablation variants can train at all with the shared budget: one train-mode
forward/backward of ``svf_tiny`` on 32 MovingDigits clips (the ``ablate`` config), then the L2
norm of the gradient of each stage's parameters, the median over seeds.

    python benchmarks/grad_scale.py                      # seeds 0,1,2 -> table on stdout
    python benchmarks/grad_scale.py --out docs/img       # also writes grad_scale.csv
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from spikevideoformer.analysis.grad_scale import STAGES, stage_grad_norms
from spikevideoformer.atomic import write_csv
from spikevideoformer.engine import seed_everything
from spikevideoformer.engine.config import load_config
from spikevideoformer.tasks.ablations import PRETRAINED, VARIANTS
from spikevideoformer.tasks.classification.data import build_classification_data
from spikevideoformer.tasks.classification.runner import build_classifier

CONFIG = Path(__file__).resolve().parents[1] / "src/spikevideoformer/configs/ablate.yaml"


def variant_grad_norms(variant: str, seed: int, batch: int) -> dict[str, float]:
    cfg = load_config(CONFIG, VARIANTS[variant] + [f"run.seed={seed}"])
    seed_everything(seed)
    model = build_classifier(cfg)
    train, _, _, _ = build_classification_data(cfg.data, cfg.model.num_classes, seed)
    x = torch.stack([train[i][0] for i in range(batch)])
    y = torch.tensor([int(train[i][1]) for i in range(batch)])
    return stage_grad_norms(model, x, y)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--out", help="directory for grad_scale.csv")
    args = ap.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for variant in VARIANTS:
        if variant == PRETRAINED:  # same network as the full model at initialisation
            continue
        per_seed = [variant_grad_norms(variant, s, args.batch) for s in seeds]
        rows.append({"variant": variant, **{s: statistics.median(d[s] for d in per_seed)
                                            for s in STAGES}})
    print(f"median over seeds {seeds} of the per-stage gradient L2 norm at init "
          f"(batch {args.batch}, train mode)\n")
    print("| variant | " + " | ".join(STAGES) + " |")
    print("|---|" + "---|" * len(STAGES))
    for r in rows:
        print(f"| {r['variant']} | " + " | ".join(f"{r[s]:.3g}" for s in STAGES) + " |")
    if args.out:
        print(f"\nwrote {write_csv(Path(args.out) / 'grad_scale.csv', rows)}")


if __name__ == "__main__":
    main()
