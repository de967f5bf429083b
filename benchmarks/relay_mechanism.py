"""What the trained DigitRelay models know per frame: linear probes on their features.

To name a DigitRelay clip's class, a model must know, at some frame t, both which quadrant is lit
now and which was lit at t - 1 (their relation, the *step* +1 / -1 / +2 quadrants clockwise, is
the route). This script loads the best checkpoints of an `svf ablate --config relay_ablate` study
and fits a logistic-regression probe on frame features of the training clips, scored on the
validation clips, for three targets:

* ``now``: the lit quadrant at t (4-way; per-frame information),
* ``prev``: the lit quadrant at t - 1 (4-way; needs memory of the previous frame),
* ``step``: the step from t - 1 to t (3-way; the order information the class is made of),

from the spatial mean of each stage's output (what the head pools) at every frame t >= 1. It also
reports, per attention layer of stages 3-4, how different the frames' attention outputs are
(mean over tokens and channels of the std over T, divided by the mean absolute value) — joint
attention multiplies every frame's queries by one clip-wide KᵀV sum, spatial attention by the
frame's own.

    python benchmarks/relay_mechanism.py --study runs/relay_ablate --csv docs/img/relay_mechanism.csv
    python benchmarks/relay_mechanism.py --study runs/relay_ablate --variants "hamming/joint (full)" --seeds 0
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path

import numpy as np
import torch

from spikevideoformer.atomic import write_csv
from spikevideoformer.data.digit_relay import DigitRelay
from spikevideoformer.tasks.ablations import VARIANTS as ABLATION_VARIANTS
from spikevideoformer.tasks.ablations import parse_variants, run_dir_name
from spikevideoformer.tasks.classification.runner import build_classifier
from spikevideoformer.tasks.common import load_trained

VARIANTS = ["hamming/joint (full)", "hamming/spatial (neuron-only time)", "hamming/factorized",
            "hamming/hierarchical", "dot/joint", "dot/spatial", "spatial, no temporal state"]
STAGE_OUTPUTS = {"stage2": "ConvBlock2_2", "stage3": "block3", "stage4": "block4"}


def lit_quadrants(ds: DigitRelay, index: int) -> list[int]:
    """The lit quadrant id of every frame of clip ``index``."""
    frames = ds.clip_params(index)["hop_frames"]
    lit = [0] * ds.num_frames
    for q, ts in frames.items():
        for t in ts:
            lit[t] = q
    return lit


@torch.no_grad()
def features(model, ds: DigitRelay, batch: int = 32):
    """Per stage ``[N, T, C]`` spatial-mean features, and per attention layer the frame
    distinctness of its output, over ``ds``."""
    feats = {s: [] for s in STAGE_OUTPUTS}
    distinct: dict[str, list[float]] = {}
    hooks = []
    for stage, name in STAGE_OUTPUTS.items():
        last = getattr(model, name)[-1]
        hooks.append(last.register_forward_hook(
            lambda m, i, out, s=stage: feats[s].append(out.flatten(3).mean(3).transpose(0, 1))))
    for name, mod in model.named_modules():
        if name.endswith(".attn") and name.startswith(("block3", "block4")):
            def hook(m, i, out, key=name):
                o = out.float()  # [T, B, C, H, W]
                score = float(o.std(0).mean() / o.abs().mean().clamp_min(1e-12))
                distinct.setdefault(key, []).append(score)
            hooks.append(mod.register_forward_hook(hook))
    try:
        for lo in range(0, len(ds), batch):
            video = torch.stack([ds[i][0] for i in range(lo, min(len(ds), lo + batch))])
            model(video)
    finally:
        for h in hooks:
            h.remove()
    return ({s: torch.cat(v).numpy() for s, v in feats.items()},
            {k: statistics.fmean(v) for k, v in distinct.items()})


def probe(xtr, ytr, xva, yva) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    sc = StandardScaler().fit(xtr)
    clf = LogisticRegression(max_iter=2000, C=1.0).fit(sc.transform(xtr), ytr)
    return float(clf.score(sc.transform(xva), yva))


def targets(ds: DigitRelay) -> dict[str, np.ndarray]:
    """``[N, T-1]`` targets for frames t = 1..T-1."""
    lit = np.array([lit_quadrants(ds, i) for i in range(len(ds))])
    step = (lit[:, 1:] - lit[:, :-1]) % 4  # 1, 2 or 3 quadrants clockwise
    return {"now": lit[:, 1:], "prev": lit[:, :-1], "step": step}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", type=Path, default=Path("runs/relay_ablate"))
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--train-clips", type=int, default=512)
    ap.add_argument("--val-clips", type=int, default=256)
    ap.add_argument("--csv", type=Path, default=None, help="write one row per checkpoint here")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s)")
    rows = []
    for variant in parse_variants(args.variants, ABLATION_VARIANTS):
        for seed in [int(s) for s in args.seeds.split(",")]:
            ckpt = args.study / run_dir_name(variant) / f"seed{seed}" / "best"
            if not ckpt.exists():
                print(f"skip {variant} seed {seed}: no {ckpt}")
                continue
            model, cfg, _ = load_trained(ckpt, build_classifier)
            kw = dict(num_frames=cfg.data.num_frames, size=cfg.data.size,
                      num_classes=cfg.model.num_classes, seed=cfg.run.seed)
            tr, va = DigitRelay("train", num_samples=args.train_clips, **kw), \
                DigitRelay("val", num_samples=args.val_clips, **kw)
            (ftr, _), (fva, distinct) = features(model, tr), features(model, va)
            ytr, yva = targets(tr), targets(va)
            record = json.loads((ckpt.parent / "ablation_run.json").read_text())["run"]
            row = {"variant": variant, "seed": seed, "final_acc": record["final"]}
            for stage in STAGE_OUTPUTS:
                xtr = ftr[stage][:, 1:].reshape(-1, ftr[stage].shape[-1])
                xva = fva[stage][:, 1:].reshape(-1, fva[stage].shape[-1])
                for name in ("now", "prev", "step"):
                    row[f"{stage}_{name}"] = probe(xtr, ytr[name].ravel(), xva, yva[name].ravel())
            row["distinct_block3"] = statistics.fmean(v for k, v in distinct.items() if k.startswith("block3"))
            row["distinct_block4"] = statistics.fmean(v for k, v in distinct.items() if k.startswith("block4"))
            rows.append(row)
            print(row, flush=True)
    cols = [f"{s}_{n}" for s in STAGE_OUTPUTS for n in ("now", "prev", "step")]
    kw = dict(num_frames=8, size=64, num_classes=4)
    majority = {k: float(np.bincount(v.ravel()).max() / v.size)
                for k, v in targets(DigitRelay("val", num_samples=args.val_clips, **kw)).items()}
    print("\nprobe accuracy on val frames t >= 1 (majority-class baseline: "
          + ", ".join(f"{k} {v:.2f}" for k, v in majority.items())
          + "), and the attention outputs' frame distinctness")
    print("| variant | seed | " + " | ".join(cols) + " | distinct block3 | distinct block4 |")
    print("|---|---|" + "---|" * (len(cols) + 2))
    for r in rows:
        print(f"| {r['variant']} | {r['seed']} | " + " | ".join(f"{r[c]:.2f}" for c in cols)
              + f" | {r['distinct_block3']:.3f} | {r['distinct_block4']:.3f} |")
    cols += ["distinct_block3", "distinct_block4"]
    print("\nmean ± std over seeds")
    print("| variant | seeds | " + " | ".join(cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for variant in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == variant]
        cells = []
        for c in cols:
            vals = [r[c] for r in mine]
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            cells.append(f"{statistics.fmean(vals):.2f} ± {sd:.2f}")
        print(f"| {variant} | {len(mine)} | " + " | ".join(cells) + " |")
    if len(rows) > 2:
        from scipy.stats import spearmanr
        acc = [r["final_acc"] for r in rows]
        print(f"\nSpearman rank correlation with the run's final val acc, {len(rows)} runs: "
              + ", ".join(f"{c} {spearmanr([r[c] for r in rows], acc)[0]:+.2f}" for c in cols))
    if args.csv:
        print(f"rows written to {write_csv(args.csv, rows)}")


if __name__ == "__main__":
    main()
