"""``svf eval``: evaluate a trained checkpoint (top-1/top-5 with multi-view testing)."""
from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="checkpoint folder (e.g. runs/demo/best)")
    p.add_argument("--clips", type=int, help="temporal clips per video (data.eval_clips)")
    p.add_argument("--crops", type=int, choices=[1, 3], help="spatial crops (data.eval_crops)")
    p.add_argument("--root", help="dataset root (data.root) if it moved")
    p.add_argument("--out", help="folder for eval_metrics.json / eval_confusion.png")


def run(args: argparse.Namespace) -> int:
    from ..tasks.classification import evaluate_classification
    over = {k: v for k, v in (("eval_clips", args.clips), ("eval_crops", args.crops),
                              ("root", args.root)) if v is not None}
    res = evaluate_classification(args.checkpoint, args.out, over)
    print(f"top-1 {100 * res['top1']:.2f}%  top-5 {100 * res['top5']:.2f}%  "
          f"({res['num_samples']} clips, {res['views']} view(s) each)")
    print(json.dumps({k: v for k, v in res.items() if k != "classes"}, indent=1))
    return 0
