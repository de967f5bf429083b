"""Where dot attention's gradient explodes at initialisation, and whether the training-time
zero-init of residual branches (docs/design.md §7.2) removes it -- at the ablation's size and at
the paper's size (svf_15m, 224x224, T = 8).

One train-mode forward/backward of cross-entropy on DigitRelay clips (real structured input at
any size) per (size, attention, init, seed); prints the L2 norm of the gradient of each stage's
parameters (float64 sums, so an overflow shows as a number, not inf). Nothing is trained; the eval-mode forward of every model is the
official one (zero-init only changes initial weights).

    python benchmarks/dot_grad_gain.py                  # svf_tiny 64x64 and svf_15m 224x224
    python benchmarks/dot_grad_gain.py --sizes tiny     # the ablation's size only (seconds)
    python benchmarks/dot_grad_gain.py --out docs/img   # also writes dot_grad_gain.csv
    python benchmarks/dot_grad_gain.py --sizes tiny --attentions dot --init PRETRAIN/best
    python benchmarks/dot_grad_gain.py --sizes paper --seeds 0,1,2 --batch 2   # peak RSS 4.2 GB
"""
from __future__ import annotations

import argparse
import math
import platform
import time
from pathlib import Path

import torch

from spikevideoformer.analysis.grad_scale import STAGES, stage_grad_norms
from spikevideoformer.atomic import write_csv
from spikevideoformer.data.digit_relay import DigitRelay
from spikevideoformer.engine import seed_everything
from spikevideoformer.engine.checkpoint import load_model_weights
from spikevideoformer.models import create_model, zero_init_residual

# name -> (model, frame size, clips per batch)
SIZES = {"tiny": ("svf_tiny", 64, 8), "paper": ("svf_15m", 224, 1)}


def grad_norms(model_name: str, size: int, batch: int, attention: str, zero_init: bool,
               seed: int, init: str | None = None) -> tuple[dict[str, float], list[tuple[str, float]]]:
    """Per-stage parameter-gradient norms, and ``(block, |dL/d output|)`` for every conv and
    transformer block in forward order (the ratio of neighbours is one block's gradient gain).
    ``init``: weights loaded after zero-init, as ``model.init`` does in training."""
    seed_everything(seed)
    model = create_model(model_name, num_classes=4, attention=attention, design="joint")
    if zero_init:
        zero_init_residual(model)
    if init:
        load_model_weights(init, model)
    data = DigitRelay("train", num_samples=batch, size=size, seed=seed)
    video = torch.stack([data[i][0] for i in range(batch)])
    target = torch.tensor([data[i][1] for i in range(batch)])
    blocks: dict[str, float] = {}

    def watch(name):
        def hook(_module, _inputs, out):
            out.register_hook(lambda g: blocks.__setitem__(name, float(g.double().norm())))
        return hook
    handles = [m.register_forward_hook(watch(n)) for n, m in model.named_modules()
               if type(m).__name__ in ("ConvBlock", "TransformerBlock")]
    try:
        norms = stage_grad_norms(model, video, target)
    finally:
        for h in handles:
            h.remove()
    order = [n for n, m in model.named_modules() if n in blocks]
    return norms, [(n, blocks[n]) for n in order]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="tiny,paper", help=f"comma-separated of {list(SIZES)}")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--out", help="directory for dot_grad_gain.csv")
    ap.add_argument("--init", help="weights to start from (e.g. the T = 1 pre-training checkpoint of "
                                   "an `image-pretrained init` ablation run with model.attention=dot);"
                                   " only its attention kind is measured")
    ap.add_argument("--attentions", default="hamming,dot")
    ap.add_argument("--batch", type=int, help="clips per batch (default: 8 tiny, 1 paper)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s)")
    rows = []
    for size_name in args.sizes.split(","):
        model_name, size, batch = SIZES[size_name]
        batch = args.batch or batch
        for attention in args.attentions.split(","):
            for zero_init in (False, True):
                for seed in seeds:
                    t0 = time.perf_counter()
                    norms, blocks = grad_norms(model_name, size, batch, attention, zero_init, seed,
                                               args.init)
                    total = math.sqrt(sum(v * v for v in norms.values()))
                    rows.append({"model": model_name, "size": size, "batch": batch, "init": args.init or "",
                                 "attention": attention, "zero_init": zero_init, "seed": seed,
                                 **norms, "total": total, "finite": math.isfinite(total),
                                 "seconds": round(time.perf_counter() - t0, 1)})
                    print(f"{model_name} {size}x{size} T=8 B={batch} {attention:<7} "
                          f"zero_init={zero_init!s:<5} seed {seed}: total {total:.3g}  "
                          + " ".join(f"{s} {norms[s]:.3g}" for s in STAGES), flush=True)
                    print("    |dL/d block output|, input to head first: "
                          + " ".join(f"{n.replace('ConvBlock', 'C').replace('block', 'T')}"
                                     f" {g:.2g}" for n, g in reversed(blocks)), flush=True)
    print("\n| model | attention | zero-init | seed | " + " | ".join(STAGES) + " | total |")
    print("|---|---|---|---|" + "---|" * (len(STAGES) + 1))
    for r in rows:
        print(f"| {r['model']} {r['size']}² | {r['attention']} | {r['zero_init']} | {r['seed']} | "
              + " | ".join(f"{r[s]:.3g}" for s in STAGES) + f" | {r['total']:.3g} |")
    if args.out:
        print(f"\nwrote {write_csv(Path(args.out) / 'dot_grad_gain.csv', rows)}")


if __name__ == "__main__":
    main()
