"""``svf ablate``: the paper's ablations at small scale, several seeds, mean ± std.

    svf ablate --quick                 # 3 headline variants × 3 seeds, 8 of 12 epochs
    svf ablate --jobs 2 --out runs/ablate
    svf ablate --variants "dot/joint,scale 1/8" --seeds 0,1,2,3,4 optim.epochs=20
    svf ablate --config relay_ablate --jobs 2   # DigitRelay 64x64: the Hamming/dot x design grid

Finished runs are reused when the same study is run again (``--fresh`` retrains them).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="ablate",
                   help="base config, shipped name or YAML path (default: ablate); a "
                        "segmentation or pose config (e.g. seg_demo) ablates that task")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--variants", help="comma-separated variant names (default: the config's "
                                      "study, e.g. relay_ablate: the Hamming/dot x design grid; "
                                      "with --quick: the 3 headline variants)")
    p.add_argument("--quick", action="store_true",
                   help="3 headline variants (full, dot, spatial), 2/3 of the epochs, half the val set "
                        "(ablate config: ≤ 10 min on 2 cores)")
    p.add_argument("--jobs", type=int, default=None,
                   help="runs trained at once in worker processes, 1 torch thread each "
                        "(default: number of CPU cores, at most 4)")
    p.add_argument("--fresh", action="store_true", help="retrain runs that already finished")
    p.add_argument("--out", default=None, help="output dir (default runs/ablate[_quick]; "
                                                "runs/ablate-<config>[_quick] for other configs)")
    p.add_argument("overrides", nargs="*", metavar="section.key=value",
                   help="applied to every variant (equal budget), e.g. optim.epochs=4")


def _parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(f"svf ablate: --seeds must be comma-separated integers, got {text!r}")
    if not seeds:
        raise SystemExit("svf ablate: --seeds is empty")
    return seeds


def _parse_variants(text: str, known) -> list[str]:
    from ..tasks.ablations import parse_variants
    try:
        return parse_variants(text, known)
    except ValueError as err:
        raise SystemExit(f"svf ablate: {err}")


def run(args: argparse.Namespace) -> int:
    from ..tasks.ablation_report import write_outputs
    from ..engine.config import load_config
    from ..engine.named_configs import resolve_config
    from ..tasks.ablations import (CONFIG_VARIANTS, HEADLINE_VARIANTS, PAPER_VARIANTS, VARIANTS,
                                   curves, headline_budget, markdown_table, run_ablations,
                                   summarize)
    from ..tasks.registry import get_task
    seeds = _parse_seeds(args.seeds)
    if args.variants:
        variants = _parse_variants(args.variants, VARIANTS)
    else:
        variants = HEADLINE_VARIANTS if args.quick else CONFIG_VARIANTS.get(args.config,
                                                                            PAPER_VARIANTS)
    jobs = args.jobs if args.jobs is not None else max(1, min(4, os.cpu_count() or 1))
    if jobs < 1:
        raise SystemExit(f"svf ablate: --jobs must be >= 1, got {jobs}")
    base = resolve_config(args.config)
    stem = "ablate" if args.config == "ablate" else f"ablate-{Path(args.config).stem}"
    out = args.out or f"runs/{stem}{'_quick' if args.quick else ''}"
    overrides = (headline_budget(load_config(base)) if args.quick else []) + list(args.overrides)
    cfg = load_config(base, overrides)
    print(f"[ablate] {len(variants)} variants × {len(seeds)} seeds, {jobs} job(s) -> {out}")
    t0 = time.perf_counter()
    runs = run_ablations(cfg, out, seeds, variants, jobs=jobs, reuse=not args.fresh)
    chance = get_task(cfg.run.task).chance(cfg)
    paths = write_outputs(runs, out, chance, title=f"{cfg.model.name} on {cfg.data.dataset}, "
                                                   f"equal budget", curves=curves(runs, out))
    print("\n" + markdown_table(summarize(runs)))
    print(f"\n{len(runs)} runs in {(time.perf_counter() - t0) / 60:.1f} min wall; wrote "
          + ", ".join(str(p) for p in paths.values()))
    return 0
