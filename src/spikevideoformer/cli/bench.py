"""``svf bench``: side-by-side efficiency benchmarks (LIF vs SpikingJelly, training step,
latency / memory / throughput vs T for every space-time design and the ANN counterpart; opt-in:
grad checkpointing ``ckpt``, ``torch.compile`` vs eager ``compile``, ``deploy.fold`` ``fold``).

Writes ``bench_<section>.csv`` for each section run, ``bench_summary.csv``,
``bench_machine.csv`` and ``bench.png`` into ``--out`` and prints the tables. ``--quick`` is a
few-second smoke run (tiny shapes; its numbers mean nothing). See docs/performance.md.
"""
from __future__ import annotations

import argparse
import sys


def _ints(s: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in s.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}")
    if not vals or any(v <= 0 for v in vals):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {s!r}")
    return vals


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda[:i]")
    p.add_argument("--threads", type=int, default=1,
                   help="torch.set_num_threads for the run (default 1: reproducible on a shared "
                        "machine; 0 keeps torch's default)")
    p.add_argument("--quick", action="store_true", help="few-second smoke run with tiny shapes")
    p.add_argument("--out", default="runs/bench", help="folder for the CSV files and bench.png")
    p.add_argument("--sections", default="lif,train,scaling",
                   help="comma-separated subset of lif,train,scaling,ckpt,compile,fold (default "
                        "lif,train,scaling; ckpt ~1 min, compile ~1-2 min, fold ~10 s are opt-in)")
    p.add_argument("--model", default=None, help="registered model (default svf_tiny)")
    p.add_argument("--size", type=int, default=None, help="frame size of the scaling sweep (192)")
    p.add_argument("--frames", type=_ints, default=None, help="T values of the sweep (4,8,16,32)")
    p.add_argument("--batch", type=int, default=None, help="clips per forward in the sweep (1)")
    p.add_argument("--designs", default=None,
                   help="comma-separated subset of joint,spatial,factorized,hierarchical,ann")
    p.add_argument("--lif-shape", type=_ints, default=None,
                   help="LIF input T,B,C,H,W (default 8,2,64,56,56)")
    p.add_argument("--train-batch", type=int, default=None, help="training-step batch (2)")
    p.add_argument("--train-frames", type=int, default=None, help="training-step T (8)")
    p.add_argument("--train-size", type=int, default=None, help="training-step frame size (112)")
    p.add_argument("--reps", type=int, default=None,
                   help="timed rounds per candidate (5; the LIF section uses twice as many)")
    p.add_argument("--ckpt-model", default=None, help="grad-checkpointing model (svf_15m)")
    p.add_argument("--ckpt-frames", type=_ints, default=None, help="grad-checkpointing T values (16)")
    p.add_argument("--ckpt-size", type=int, default=None, help="grad-checkpointing frame size (64)")
    p.add_argument("--compile-model", default=None, help="torch.compile model (svf_tiny)")
    p.add_argument("--compile-frames", type=int, default=None, help="torch.compile T (2)")
    p.add_argument("--compile-size", type=int, default=None, help="torch.compile frame size (32)")
    p.add_argument("--compile-backend", default=None,
                   help="torch.compile backend (inductor; --quick: aot_eager)")
    p.add_argument("--fold-model", default=None, help="fold model (svf_tiny)")
    p.add_argument("--fold-frames", type=int, default=None, help="fold T (4)")
    p.add_argument("--fold-size", type=int, default=None, help="fold frame size (64)")
    p.add_argument("--tune-malloc", action="store_true",
                   help="glibc: keep freed memory for reuse (fewer page faults on big tensors)")
    p.add_argument("--no-spikingjelly", action="store_true", help="skip the SpikingJelly rows")
    p.add_argument("--markdown", action="store_true", help="print the tables as Markdown")


def run(args: argparse.Namespace) -> int:
    from ..analysis.bench import quick_config, BenchConfig, format_report, run_benchmarks, SECTIONS
    from ..analysis.bench import VARIANTS as DESIGNS  # the designs and the ANN counterpart

    sections = tuple(s.strip() for s in args.sections.split(",") if s.strip())
    bad = [s for s in sections if s not in SECTIONS]
    if bad or not sections:
        raise ValueError(f"--sections must be a subset of {','.join(SECTIONS)}, "
                         f"got {args.sections!r}")
    from . import check_device
    check_device(args.device)
    for name in ("size", "batch", "train_batch", "train_frames", "train_size", "reps", "ckpt_size",
                 "compile_frames", "compile_size", "fold_frames", "fold_size"):
        val = getattr(args, name)
        if val is not None and val < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {val}")
    cfg = quick_config() if args.quick else BenchConfig()
    cfg.sections = sections
    cfg.device = args.device
    cfg.threads = args.threads if args.threads and args.threads > 0 else None
    cfg.spikingjelly = not args.no_spikingjelly
    cfg.tune_malloc = bool(args.tune_malloc)
    for name in ("model", "size", "frames", "batch", "lif_shape", "train_batch", "train_frames",
                 "train_size", "reps", "ckpt_model", "ckpt_frames", "ckpt_size", "compile_model",
                 "compile_frames", "compile_size", "compile_backend", "fold_model", "fold_frames",
                 "fold_size"):
        val = getattr(args, name)
        if val is not None:
            setattr(cfg, name, val)
    if args.designs:
        designs = tuple(d.strip() for d in args.designs.split(",") if d.strip())
        unknown = [d for d in designs if d not in DESIGNS]
        if unknown:
            raise ValueError(f"unknown design(s) {unknown}; choose from {', '.join(DESIGNS)}")
        cfg.designs = designs
    if len(cfg.lif_shape) < 2:
        raise ValueError("--lif-shape needs at least T and one more dimension")
    if min(cfg.size, cfg.train_size, cfg.ckpt_size, cfg.compile_size, cfg.fold_size) < 16:
        raise ValueError("frame sizes must be at least 16 (the backbone downsamples 16x)")
    from ..models import MODEL_SIZES
    for m in (cfg.model, cfg.ckpt_model, cfg.compile_model, cfg.fold_model):
        if m not in MODEL_SIZES:
            raise ValueError(f"unknown model {m!r}; available: {', '.join(MODEL_SIZES)}")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    results = run_benchmarks(cfg, args.out, log=log)
    print(format_report(results, markdown=args.markdown))
    print(f"\nwrote {args.out}/bench_*.csv and {args.out}/bench.png "
          f"({results['wall_s']:.1f} s)")
    return 0
