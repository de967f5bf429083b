"""``svf predict VIDEO --checkpoint DIR``: top-k classes with probabilities."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="video file (mp4, avi, mkv, webm, mov)")
    p.add_argument("--checkpoint", required=True, help="checkpoint folder (e.g. runs/demo/best)")
    p.add_argument("--topk", type=int, default=5)


def run(args: argparse.Namespace) -> int:
    if args.topk < 1:
        raise ValueError(f"--topk must be >= 1, got {args.topk}")
    from ..tasks.common import load_run_config
    from ..tasks.registry import get_task, task_names

    task = load_run_config(args.checkpoint)[1].run.task
    predict = get_task(task).predict
    if predict is None:
        able = [n for n in task_names() if get_task(n).predict is not None]
        raise ValueError(f"svf predict needs a checkpoint of a task with predictions "
                         f"({', '.join(able)}); {args.checkpoint} was trained for run.task={task!r}")
    for rank, (name, prob) in enumerate(predict(args.video, args.checkpoint, args.topk), 1):
        print(f"{rank}. {name:<24} {100 * prob:6.2f}%")
    return 0
