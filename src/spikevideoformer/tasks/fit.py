"""The one training path of every task: process group → seed → data → model → Trainer → fit.

    result = fit_task(cfg)                       # the task of cfg.run.task
    result = fit_task(cfg, get_task("pose"), smpl_model="SMPL_NEUTRAL.pkl")
"""
from __future__ import annotations

from typing import Any, Optional

from ..engine import Trainer, build_dataloader, distributed_run, seed_everything
from ..engine.config import TrainConfig
from ..models import set_training_recipe, zero_init_residual
from .datasets import TaskData
from .registry import TaskSpec, get_task

__all__ = ["fit_task", "build_loaders"]


def build_loaders(cfg: TrainConfig, data: TaskData, info=None):
    """``(train_loader, val_loader)`` of ``data`` (validation batch: ``data.val_batch_size``)."""
    kw = dict(info=info, seed=cfg.run.seed, num_workers=cfg.data.num_workers, collate_fn=data.collate)
    return (build_dataloader(data.train, cfg.data.batch_size, train=True, **kw),
            build_dataloader(data.val, data.val_batch_size or cfg.data.batch_size, train=False, **kw))


def fit_task(cfg: TrainConfig, spec: Optional[TaskSpec] = None, progress: bool = True,
             data: Optional[TaskData] = None, **options: Any) -> dict[str, Any]:
    """Train (or resume) ``cfg`` with its task (``spec``, default ``cfg.run.task``); returns the
    Trainer's final record. ``data`` replaces the datasets ``spec.build_data`` would build;
    ``options`` are the task's extra options (``spec.options``).

    Under torchrun the process group lives exactly as long as this call, also when training
    raises (:func:`~spikevideoformer.engine.distributed_run`).
    """
    spec = spec or get_task(cfg.run.task)
    unknown = sorted(k for k in options if k not in spec.options)
    if unknown:
        takes = f"; it takes {', '.join(spec.options)}" if spec.options else ""
        raise ValueError(f"option(s) {', '.join(unknown)} not used by the {spec.name} task{takes}")
    spec.check(cfg)
    with distributed_run(cfg.run.device) as info:
        return _fit(cfg, spec, info, progress, data, options)


def _fit(cfg: TrainConfig, spec: TaskSpec, info, progress: bool, data: Optional[TaskData],
         options: dict) -> dict[str, Any]:
    # a frame of its own: on an error, distributed_run frees the trainer before the group
    seed_everything(cfg.run.seed, cfg.run.deterministic)
    if data is None:
        data = spec.build_data(cfg, **options)
    model = spec.build_model(cfg, data, **options)
    if cfg.model.zero_init_residual:  # training-time init only (docs/design.md §7.2)
        zero_init_residual(model)
    set_training_recipe(model, cfg.model.surrogate_alpha, cfg.model.bn_momentum)  # §7.5
    start_cfg = spec.prepare(model, cfg, data)
    task = spec.make_task(cfg, data)
    train_loader, val_loader = build_loaders(cfg, data, info)
    trainer = Trainer(model, task, start_cfg, train_loader, val_loader, progress=progress,
                      dist_info=info)
    trainer.cfg = cfg  # config.yaml and checkpoints record the configured run
    spec.on_start(trainer, task, data)
    result = trainer.fit()
    spec.on_end(trainer, task, data)
    return result
