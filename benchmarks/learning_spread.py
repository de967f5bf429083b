"""Spread of the learning-progress statistics that unit tests assert, over seeds and threads.

A test that asserts learning progress ("the loss falls by x % in n steps") must pass on any
CPU and thread count.  This script runs each such test's own training loop (imported from
tests/) for several seeds with 1 and 2 intra-op threads and prints the statistic next to the
test's threshold, so the threshold is set from a measured spread, with margin:

    python benchmarks/learning_spread.py --seeds 10 --out docs/img/learning_spread.csv
"""
from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from spikevideoformer.machine import cpu_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def _cases():
    import test_classification as cls
    import test_engine_trainer as tr
    import test_pose_task as pose
    import test_seg_task as seg

    def in_tmp(fn):
        def run(seed: int) -> float:
            with tempfile.TemporaryDirectory() as d:
                return fn(seed, Path(d))
        return run

    def trainer_run(seed: int) -> dict:
        with tempfile.TemporaryDirectory() as d, contextlib.redirect_stdout(io.StringIO()):
            t = tr.make_trainer(Path(d), "run", epochs=5, model_seed=seed)
            final = t.fit()
            return {"drop": t.history[0]["train_loss"] - t.history[-1]["train_loss"],
                    "acc": final["val_acc"]}

    def trainer_drop(seed: int) -> float:
        return trainer_run(seed)["drop"]

    def trainer_acc(seed: int) -> float:
        return trainer_run(seed)["acc"]

    return {
        # name: (statistic(seed), threshold, "<" or ">")
        "pose_loss_ratio": (lambda s: pose.pose_loss_ratio(pose.pose_loss_curve(s)[0]),
                            pose.POSE_RATIO_MAX, "<"),
        "seg_loss_ratio": (lambda s: seg.seg_loss_ratio(seg.seg_loss_curve(s)), seg.SEG_RATIO_MAX, "<"),
        "trainer_loss_drop": (trainer_drop, tr.LOSS_DROP_MIN, ">"),
        "trainer_val_acc": (trainer_acc, tr.VAL_ACC_MIN, ">"),
        "cls_reduced_demo_acc": (in_tmp(cls.reduced_demo_acc), cls.REDUCED_DEMO_ACC_MIN, ">"),
        "seg_reduced_demo_miou": (in_tmp(seg.reduced_demo_miou), seg.REDUCED_DEMO_MIOU_MIN, ">"),
        "pose_reduced_demo_ratio": (in_tmp(pose.reduced_demo_ratio), pose.REDUCED_DEMO_RATIO_MAX, "<"),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--cases", default="", help="comma-separated subset of the cases")
    ap.add_argument("--out", help="CSV of every (case, threads, seed, value)")
    args = ap.parse_args(argv)
    cases = _cases()
    names = [c for c in args.cases.split(",") if c] or list(cases)
    rows = []
    print(f"CPU: {cpu_model()}, torch {torch.__version__}")
    for name in names:
        fn, threshold, op = cases[name]
        for th in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(th)
            t0 = time.perf_counter()
            vals = [fn(seed) for seed in range(args.seeds)]
            rows += [dict(case=name, threads=th, seed=s, value=v) for s, v in enumerate(vals)]
            worst = max(vals) if op == "<" else min(vals)
            print(f"{name:18s} threads={th}  min {min(vals):.3f}  mean {statistics.mean(vals):.3f}  "
                  f"max {max(vals):.3f}  sd {statistics.pstdev(vals):.3f}   test: {op} {threshold} "
                  f"(worst {worst:.3f})  {time.perf_counter() - t0:.0f} s", flush=True)
    if args.out:
        sys.path.insert(0, str(ROOT / "src"))
        from spikevideoformer.atomic import write_csv
        write_csv(args.out, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
