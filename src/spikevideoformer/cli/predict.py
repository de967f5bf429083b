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
    from ..tasks.classification import predict_video
    for rank, (name, prob) in enumerate(predict_video(args.video, args.checkpoint, args.topk), 1):
        print(f"{rank}. {name:<24} {100 * prob:6.2f}%")
    return 0
