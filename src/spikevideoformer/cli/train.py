"""``svf train``: train a model from a YAML config plus ``section.key=value`` overrides.

    svf train --config demo optim.epochs=10 data.batch_size=16
    torchrun --nproc_per_node 2 -m spikevideoformer.cli train --config my.yaml
"""
from __future__ import annotations

import argparse
import json
from importlib import resources
from pathlib import Path

from ..engine.config import TrainConfig, load_config
from . import check_device
from ..engine.distributed import distributed_run


def shipped_configs() -> list[str]:
    """Names of the configs that ship with the package (``svf train --config NAME``)."""
    return sorted(p.name[:-5] for p in resources.files("spikevideoformer.configs").iterdir()
                  if p.name.endswith(".yaml"))


def resolve_config(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.is_file():
        return p
    if p.is_dir():
        raise ValueError(f"config {name_or_path!r} is a directory, not a YAML file")
    shipped = resources.files("spikevideoformer.configs") / f"{name_or_path}.yaml"
    if shipped.is_file():
        return Path(str(shipped))
    raise FileNotFoundError(f"config {name_or_path!r} is neither a file nor a shipped config "
                            f"({', '.join(shipped_configs())})")


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="demo",
                   help="YAML file or shipped config name (default: demo)")
    p.add_argument("overrides", nargs="*", metavar="section.key=value",
                   help="config overrides, e.g. optim.lr=3e-4 data.batch_size=8")
    p.add_argument("--out", help="output folder (run.out_dir)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace, extra: list[str] = ()) -> TrainConfig:
    overrides = list(args.overrides) + list(extra)
    if getattr(args, "out", None):
        overrides.append(f"run.out_dir={args.out}")
    cfg = load_config(resolve_config(args.config), overrides)
    out = Path(cfg.run.out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output folder {out} (run.out_dir) is an existing file")
    check_device(cfg.run.device, "run.device")
    return cfg


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common(p)
    p.add_argument("--task", choices=["classification", "pose", "segmentation"],
                   help="run.task (default: from the config)")
    p.add_argument("--modality", choices=["rgb", "gray", "event", "events"],
                   help="data.modality ('events' = 'event')")
    p.add_argument("--resume", metavar="auto|DIR", help="resume from a checkpoint ('auto': out/last)")
    p.add_argument("--init", metavar="PATH", help="initialise weights (official .pth or ours)")
    p.add_argument("--smpl-model", metavar="PATH",
                   help="pose task: SMPL model file you downloaded (default: built-in skeleton)")


def run_training(cfg: TrainConfig, progress: bool = True, smpl_model: str | None = None) -> dict:
    """Run the task's trainer; under torchrun the process group lives exactly as long as this
    call, also when training raises (:func:`~spikevideoformer.engine.distributed_run`)."""
    with distributed_run(cfg.run.device):
        return _dispatch(cfg, progress, smpl_model)


def _dispatch(cfg: TrainConfig, progress: bool, smpl_model: str | None) -> dict:
    if cfg.run.task == "classification":
        from ..tasks.classification import train_classification
        return train_classification(cfg, progress=progress)
    if cfg.run.task == "pose":
        from ..tasks.pose.runner import train_pose
        return train_pose(cfg, progress=progress, smpl_model=smpl_model)
    if cfg.run.task == "segmentation":
        from ..tasks.segmentation.runner import train_segmentation
        return train_segmentation(cfg, progress=progress)
    raise ValueError(f"unknown run.task {cfg.run.task!r}")


def run(args: argparse.Namespace) -> int:
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
    if args.smpl_model and cfg.run.task != "pose":
        raise ValueError("--smpl-model is only used by the pose task (run.task=pose)")
    result = run_training(cfg, progress=not args.quiet, smpl_model=args.smpl_model)
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, (list, dict))}, indent=1))
    return 0
