"""Task-agnostic training engine: config, checkpoints, LR schedule, logging, DDP, Trainer.

Typical use::

    from spikevideoformer.engine import Trainer, load_config, seed_everything, distributed_run
    cfg = load_config("configs/demo.yaml", overrides=["optim.lr=3e-4"])
    with distributed_run(cfg.run.device):              # no-op without torchrun
        seed_everything(cfg.run.seed)                  # reproducible model init
        trainer = Trainer(model, task, cfg, train_loader, val_loader)
        metrics = trainer.fit()
        del trainer                                    # free DDP before the group goes
"""
from .checkpoint import (CheckpointError, LoadReport, load_checkpoint, load_model_weights,
                         resolve_checkpoint, save_checkpoint)
from .config import (ConfigError, DataConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig,
                     load_config, save_config, to_dict)
from .device import resolve_device
from .distributed import (DistInfo, all_gather_objects, all_reduce_mean, all_reduce_sum, barrier, cleanup,
                          distributed_run, get_dist_info, init_distributed, unwrap_model, wrap_model)
from .loaders import build_dataloader, build_sampler, set_loader_epoch
from .logger import MetricLogger, plot_curves, read_jsonl
from .schedule import WarmupCosineSchedule, build_optimizer, lr_factor, steps_from_epochs
from .seeding import capture_rng_state, restore_rng_state, seed_everything
from .task import Task
from .trainer import Trainer

__all__ = [
    "CheckpointError", "LoadReport", "capture_rng_state", "load_checkpoint", "load_model_weights",
    "resolve_checkpoint", "restore_rng_state", "save_checkpoint", "unwrap_model",
    "ConfigError", "DataConfig", "ModelConfig", "OptimConfig", "RunConfig", "TrainConfig",
    "load_config", "save_config", "to_dict",
    "DistInfo", "all_gather_objects", "all_reduce_mean", "all_reduce_sum", "barrier",
    "build_dataloader", "build_sampler", "cleanup", "distributed_run", "get_dist_info",
    "init_distributed",
    "resolve_device", "set_loader_epoch", "wrap_model",
    "MetricLogger", "plot_curves", "read_jsonl",
    "WarmupCosineSchedule", "lr_factor", "steps_from_epochs",
    "Task", "Trainer", "build_optimizer", "seed_everything",
]
