"""``svf demo``: train svf_tiny on an embedded task in minutes, then use the checkpoint.

Classification (default): MovingDigits, whose label is the direction of motion; pose: the
synthetic skeleton task; segmentation: synthetic textured shapes. Each task's demo lives in
``tasks/<task>/demo.py``. ``--compare`` also trains the spatial-only model without temporal
state on the same budget, to show what video attention buys.
"""
from __future__ import annotations

import argparse

from ..tasks.registry import task_names


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default="classification", choices=task_names())
    p.add_argument("--modality", default="rgb", choices=["rgb", "event", "events"],
                   help="event: the clips are converted to event frames by the simulator")
    p.add_argument("--compare", action="store_true",
                   help="also train a spatial-only model without temporal state")
    p.add_argument("--quick", action="store_true", help="a tiny budget (smoke test, < 1 min)")
    p.add_argument("--out", help="output folder (default runs/demo[-TASK])")
    p.add_argument("overrides", nargs="*", metavar="section.key=value")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..tasks.registry import get_task

    return get_task(args.task).demo(out=args.out, modality=args.modality.rstrip("s"),
                                    quick=args.quick, compare=args.compare,
                                    overrides=list(args.overrides), progress=not args.quiet)
