"""``svf demo``: train svf_tiny on an embedded task in minutes, then use the checkpoint.

Classification (default): MovingDigits, whose label is the direction of motion (no single
frame tells it). Prints the per-epoch table, saves checkpoint + curves, writes one generated
clip to mp4 and runs ``svf predict`` on it. ``--compare`` also trains the spatial-only model
without temporal state on the same budget, to show what video attention buys.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from .train import config_from_args, run_training


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default="classification",
                   choices=["classification", "pose", "segmentation"])
    p.add_argument("--modality", default="rgb", choices=["rgb", "event", "events"],
                   help="event: the clips are converted to event frames by the simulator")
    p.add_argument("--compare", action="store_true",
                   help="also train a spatial-only model without temporal state")
    p.add_argument("--quick", action="store_true", help="a tiny budget (smoke test, < 1 min)")
    p.add_argument("--out", help="output folder (default runs/demo[-TASK])")
    p.add_argument("overrides", nargs="*", metavar="section.key=value")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


QUICK = ["data.train_samples=64", "data.val_samples=32", "optim.epochs=1", "data.batch_size=16"]


def print_table(history: list[dict], title: str) -> None:
    print(f"\n{title}")
    print(f"{'epoch':>5} {'train_loss':>10} {'train_acc':>9} {'val_acc':>8} {'epoch_s':>8}")
    for r in history:
        print(f"{r['epoch']:>5} {r['train_loss']:>10.4f} {r.get('train_acc', float('nan')):>9.3f} "
              f"{r.get('val_acc', float('nan')):>8.3f} {r.get('epoch_time_s', 0):>8.1f}")


def _classification(args: argparse.Namespace) -> int:
    args.modality = args.modality.rstrip("s")  # "events" is an alias of "event"
    from ..data.moving_digits import MovingDigits
    from ..data.video_io import write_video
    from ..engine.logger import read_jsonl
    from ..tasks.classification import predict_video

    out = Path(args.out or ("runs/demo" if args.modality == "rgb" else "runs/demo-events"))
    extra = [f"data.modality={args.modality}"]
    if args.modality == "event":  # events make motion explicit: learned in ~3 epochs, and the
        extra.append("optim.epochs=8")  # per-clip simulator makes epochs slower
    extra += QUICK if args.quick else []
    args.config = "demo"
    cfg = config_from_args(argparse.Namespace(**{**vars(args), "out": str(out)}), extra)
    t0 = time.perf_counter()
    result = run_training(cfg, progress=not args.quiet)
    minutes = (time.perf_counter() - t0) / 60
    history = read_jsonl(out / "metrics.jsonl")
    print_table(history, f"svf_tiny ({cfg.model.attention}, {cfg.model.design}) on MovingDigits "
                         f"[{args.modality}], T={cfg.data.num_frames}, {cfg.data.size}x{cfg.data.size}")
    print(f"best val_acc {result['best_metric']:.3f} (epoch {result['best_epoch']}), "
          f"total {minutes:.1f} min; checkpoint {out / 'best'}, curves {out / 'curves.png'}")

    # use the checkpoint like a user would: a clip written to mp4, then `svf predict`
    frames = cfg.data.num_frames + (1 if args.modality == "event" else 0)
    ds = MovingDigits("test", num_samples=4, num_frames=frames, size=cfg.data.size,
                      num_classes=cfg.model.num_classes, seed=cfg.run.seed)
    clip, label = ds[1]
    video = write_video(out / "example_clip.mp4", clip, fps=4)
    print(f"\nsvf predict {video} --checkpoint {out / 'best'}   (true class: {ds.classes[label]})")
    for rank, (name, prob) in enumerate(predict_video(video, out / "best", topk=3), 1):
        print(f"  {rank}. {name:<12} {100 * prob:6.2f}%")

    if args.compare:
        cmp_out = out.parent / (out.name + "-spatial-nostate")
        cfg2 = config_from_args(argparse.Namespace(**{**vars(args), "out": str(cmp_out)}),
                                extra + ["model.design=spatial", "model.temporal_state=false"])
        res2 = run_training(cfg2, progress=not args.quiet)
        print_table(read_jsonl(cmp_out / "metrics.jsonl"),
                    "spatial-only attention, membranes reset every frame (no temporal state)")
        print(f"\nval_acc: joint SDHA {result['best_metric']:.3f} vs spatial/no-state "
              f"{res2['best_metric']:.3f} (chance {1 / cfg.model.num_classes:.3f})")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.task == "classification":
        return _classification(args)
    if args.task == "pose":
        from ..tasks.pose.demo import run_pose_demo
        return run_pose_demo(args)
    from ..tasks.segmentation.demo import run_segmentation_demo
    return run_segmentation_demo(args)
