"""Shared glue of the tasks: build a backbone from a ModelConfig, load a trained run."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..engine.checkpoint import META_FILE, CheckpointError, _read_meta, load_checkpoint, resolve_checkpoint
from ..engine.config import ConfigError, TrainConfig, load_config
from ..atomic import write_json
from ..models import SpikeVideoFormer, create_model

__all__ = ["build_backbone", "write_json", "load_run_config", "load_trained"]


def build_backbone(model_cfg: Any, in_chans: int, num_classes: int) -> SpikeVideoFormer:
    """``create_model`` from a :class:`ModelConfig` (``num_classes=0``: no head), with
    ``model.grad_checkpointing`` applied (the pose/segmentation wrappers hold this backbone)."""
    model = create_model(
        model_cfg.name, num_classes=num_classes, attention=model_cfg.attention,
        design=model_cfg.design, embed_dim=model_cfg.embed_dim, in_chans=in_chans,
        neuron=model_cfg.neuron, spike_max=model_cfg.spike_max,
        temporal_state=model_cfg.temporal_state, scale=_scale(model_cfg.attention_scale))
    model.set_grad_checkpointing(bool(getattr(model_cfg, "grad_checkpointing", False)))
    return model


def _scale(value: str | float | None) -> str | float | None:
    """``model.attention_scale``: a named scale (``"1/8"``) or a number (maybe given as text)."""
    if value is None or isinstance(value, float):
        return value
    try:
        return float(value)
    except ValueError:
        return value


def load_run_config(checkpoint: str | os.PathLike) -> tuple[Path, TrainConfig]:
    """Resolve a checkpoint directory and read the TrainConfig recorded in its meta.json."""
    d = resolve_checkpoint(checkpoint)
    meta = _read_meta(d)
    if not meta.get("config"):
        raise CheckpointError(f"checkpoint {d} records no training config in {META_FILE}")
    try:
        return d, load_config(meta["config"])
    except ConfigError as exc:
        raise CheckpointError(f"{d / META_FILE}: invalid training config: {exc}") from exc


def load_trained(checkpoint: str | os.PathLike, build) -> tuple[torch.nn.Module, TrainConfig, Path]:
    """Build a model with ``build(cfg)`` and load the checkpoint's weights (eval mode)."""
    d, cfg = load_run_config(checkpoint)
    model = build(cfg)
    load_checkpoint(d, model, restore_rng=False)
    return model.eval(), cfg, d
