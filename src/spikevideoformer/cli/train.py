"""``svf train``: train a model from a YAML config plus ``section.key=value`` overrides.

    svf train --config demo optim.epochs=10 data.batch_size=16
    torchrun --nproc_per_node 2 -m spikevideoformer.cli train --config my.yaml
"""
from __future__ import annotations

import argparse
import json

from ..engine.config import TrainConfig
from ..engine.named_configs import load_named_config
from ..tasks.registry import task_names


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="demo",
                   help="YAML file or shipped config name (default: demo)")
    p.add_argument("overrides", nargs="*", metavar="section.key=value",
                   help="config overrides, e.g. optim.lr=3e-4 data.batch_size=8")
    p.add_argument("--out", help="output folder (run.out_dir)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace, extra: list[str] = ()) -> TrainConfig:
    """The config of ``--config`` + positional overrides + ``extra`` + ``--out``."""
    return load_named_config(args.config, list(args.overrides) + list(extra), getattr(args, "out", None))


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common(p)
    p.add_argument("--task", choices=task_names(), help="run.task (default: from the config)")
    p.add_argument("--modality", choices=["rgb", "gray", "event", "events"],
                   help="data.modality ('events' = 'event')")
    p.add_argument("--resume", metavar="auto|DIR", help="resume from a checkpoint ('auto': out/last)")
    p.add_argument("--init", metavar="PATH", help="initialise weights (official .pth or ours)")
    p.add_argument("--smpl-model", metavar="PATH",
                   help="pose task: SMPL model file you downloaded (default: built-in skeleton)")


def run(args: argparse.Namespace) -> int:
    from ..tasks.fit import fit_task
    from ..tasks.registry import get_task

    extra = []
    if args.task:
        extra.append(f"run.task={args.task}")
    if args.modality:
        extra.append(f"data.modality={args.modality.rstrip('s')}")
    if args.resume:
        extra.append(f"run.resume={args.resume}")
    if args.init:
        extra.append(f"model.init={args.init}")
    cfg = config_from_args(args, extra)
    spec = get_task(cfg.run.task)
    options = {"smpl_model": args.smpl_model} if args.smpl_model else {}
    if options and "smpl_model" not in spec.options:
        raise ValueError(f"--smpl-model is not used by the {spec.name} task (run.task={cfg.run.task})")
    result = fit_task(cfg, spec, progress=not args.quiet, **options)
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, (list, dict))}, indent=1))
    return 0
