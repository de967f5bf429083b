"""``svf eval``: evaluate a trained checkpoint (the task is read from its config).

Classification: top-1/top-5 with multi-view testing; pose: MPJPE/PA-MPJPE/PEL-MPJPE;
segmentation: mIoU and mVC.
"""
from __future__ import annotations

import argparse

from ..tasks.registry import task_names


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="checkpoint folder (e.g. runs/demo/best)")
    p.add_argument("--clips", type=int, help="classification: temporal clips per video (data.eval_clips)")
    p.add_argument("--crops", type=int, choices=[1, 3], help="classification: spatial crops (data.eval_crops)")
    p.add_argument("--root", help="classification: dataset root (data.root) if it moved")
    p.add_argument("--out", help="folder for eval_metrics.json and the figures")
    p.add_argument("--smpl-model", metavar="PATH", help="pose: SMPL model file (if trained with one)")
    p.add_argument("--task", choices=task_names(),
                   help="optional check: the checkpoint must have been trained for this task")


def run(args: argparse.Namespace) -> int:
    if args.clips is not None and args.clips < 1:
        raise ValueError(f"--clips must be >= 1, got {args.clips}")
    from ..tasks.common import load_run_config
    from ..tasks.registry import get_task

    task = load_run_config(args.checkpoint)[1].run.task
    if args.task and args.task != task:
        raise ValueError(f"checkpoint {args.checkpoint} was trained for run.task={task!r}, not {args.task!r}")
    spec = get_task(task)
    overrides = {k: v for k, v in (("eval_clips", args.clips), ("eval_crops", args.crops),
                                   ("root", args.root)) if v is not None}
    options = {"smpl_model": args.smpl_model} if args.smpl_model else {}
    if options and "smpl_model" not in spec.options:
        raise ValueError(f"--smpl-model is not used by the {task} task")
    spec.evaluate(args.checkpoint, args.out, print_table=True, overrides=overrides, **options)
    return 0
