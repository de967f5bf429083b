"""``svf eval``: evaluate a trained checkpoint (the task is read from its config).

Classification: top-1/top-5 with multi-view testing; pose: MPJPE/PA-MPJPE/PEL-MPJPE;
segmentation: mIoU and mVC.
"""
from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="checkpoint folder (e.g. runs/demo/best)")
    p.add_argument("--clips", type=int, help="temporal clips per video (data.eval_clips)")
    p.add_argument("--crops", type=int, choices=[1, 3], help="spatial crops (data.eval_crops)")
    p.add_argument("--root", help="dataset root (data.root) if it moved")
    p.add_argument("--out", help="folder for eval_metrics.json / eval_confusion.png")
    p.add_argument("--smpl-model", metavar="PATH", help="pose: SMPL model file (if trained with one)")
    p.add_argument("--task", choices=["classification", "pose", "segmentation"],
                   help="optional check: the checkpoint must have been trained for this task")


def run(args: argparse.Namespace) -> int:
    if args.clips is not None and args.clips < 1:
        raise ValueError(f"--clips must be >= 1, got {args.clips}")
    from ..tasks.common import load_run_config
    task = load_run_config(args.checkpoint)[1].run.task
    if args.task and args.task != task:
        raise ValueError(f"checkpoint {args.checkpoint} was trained for run.task={task!r}, not {args.task!r}")
    if task != "classification":  # pose / segmentation print their own tables
        import importlib
        mod = importlib.import_module(f"..tasks.{task}.runner", __package__)
        extra = {"smpl_model": args.smpl_model} if task == "pose" and args.smpl_model else {}
        getattr(mod, f"evaluate_{task}")(args.checkpoint, args.out, print_table=True, **extra)
        return 0
    from ..tasks.classification import evaluate_classification
    over = {k: v for k, v in (("eval_clips", args.clips), ("eval_crops", args.crops),
                              ("root", args.root)) if v is not None}
    res = evaluate_classification(args.checkpoint, args.out, over)
    print(f"top-1 {100 * res['top1']:.2f}%  top-5 {100 * res['top5']:.2f}%  "
          f"({res['num_samples']} clips, {res['views']} view(s) each)")
    print(json.dumps({k: v for k, v in res.items() if k != "classes"}, indent=1))
    return 0
