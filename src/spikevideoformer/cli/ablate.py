"""``svf ablate``: the paper's ablations at small scale, several seeds, mean ± std.

    svf ablate --quick                 # reduced budget (≤ 10 min on 2 cores)
    svf ablate --seeds 0,1,2 --out runs/ablate
"""
from __future__ import annotations

import argparse
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="demo", help="base config (default: the demo config)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--variants", help="comma-separated subset of variant names (default: all)")
    p.add_argument("--quick", action="store_true", help="reduced budget per run")
    p.add_argument("--out", default="runs/ablate")
    p.add_argument("overrides", nargs="*", metavar="section.key=value",
                   help="applied to every variant (equal budget), e.g. optim.epochs=4")


QUICK = ["data.train_samples=512", "data.val_samples=256", "optim.epochs=2"]


def run(args: argparse.Namespace) -> int:
    from ..tasks.ablations import VARIANTS, markdown_table, run_ablations, summarize, write_outputs
    from .train import resolve_config
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    variants = [v.strip() for v in args.variants.split(",")] if args.variants else list(VARIANTS)
    t0 = time.perf_counter()
    runs = run_ablations(resolve_config(args.config), args.out, seeds, variants,
                         (QUICK if args.quick else []) + list(args.overrides))
    paths = write_outputs(runs, args.out)
    print("\n" + markdown_table(summarize(runs)))
    print(f"\n{len(runs)} runs in {(time.perf_counter() - t0) / 60:.1f} min; "
          f"wrote {paths['runs']}, {paths['summary']}, {paths['png']}")
    return 0
