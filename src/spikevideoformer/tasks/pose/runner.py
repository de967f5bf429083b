"""Train / evaluate the pose-tracking model (``svf train`` with ``run.task: pose``, ``svf eval``).

Datasets and modalities: :mod:`.data`.

Body model: the built-in :class:`~.skeleton.SimpleSkeleton` unless ``smpl_model=PATH`` is
given (the licensed SMPL files, see :data:`~.smpl.SMPL_HELP`). The choice is recorded in
``<out_dir>/pose_meta.json`` together with the training means used by the mean-pose baseline,
and :func:`evaluate_pose` reads it back.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import torch

from ...engine import build_dataloader
from ...engine.config import TrainConfig
from ..common import build_backbone, load_run_config, write_json
from ..datasets import MODALITY_CHANNELS
from ..fit import fit_task
from .data import build_pose_data, training_pose_stats
from .head import PoseSpikeVideoFormer
from .render import plot_skeleton_sequence
from .smpl import load_body_model
from .task import PoseTask

__all__ = ["build_pose_model", "body_model_for", "pose_meta", "train_pose", "evaluate_pose",
           "print_pose_table"]

META_FILE = "pose_meta.json"


# --------------------------------------------------------------------------- model
def body_model_for(smpl_model: Optional[str]) -> torch.nn.Module:
    """SMPL from the file ``smpl_model``, else the built-in skeleton."""
    return load_body_model("smpl", smpl_model) if smpl_model else load_body_model("skeleton")


def build_pose_model(cfg: TrainConfig, smpl_model: Optional[str] = None,
                     body_model: Optional[torch.nn.Module] = None) -> PoseSpikeVideoFormer:
    """The pose model a config describes: backbone (``num_classes`` ignored) + pose head + body
    model (``body_model``, else SMPL from ``smpl_model``, else the built-in skeleton)."""
    if cfg.data.modality not in MODALITY_CHANNELS:
        raise ValueError(f"data.modality must be one of {list(MODALITY_CHANNELS)}, got {cfg.data.modality!r}")
    backbone = build_backbone(cfg.model, MODALITY_CHANNELS[cfg.data.modality], 0)
    body = body_model if body_model is not None else body_model_for(smpl_model)
    return PoseSpikeVideoFormer(backbone, body_model=body)


def pose_meta(stats: Mapping[str, torch.Tensor], smpl_model: Optional[str], task: PoseTask) -> Dict[str, Any]:
    """The ``pose_meta.json`` record: body model, loss settings, training means."""
    return {"body_model": "smpl" if smpl_model else "skeleton",
            "smpl_model": os.path.abspath(os.path.expanduser(smpl_model)) if smpl_model else None,
            "loss_weights": task.weights, "joint_loss": task.joint_loss,
            **{k: v.tolist() for k, v in stats.items()}}


def _read_meta(run_dir: Path) -> Optional[Dict[str, Any]]:
    for d in (run_dir, run_dir.parent):
        p = d / META_FILE
        if p.is_file():
            return json.loads(p.read_text(encoding="utf-8"))
    return None


# --------------------------------------------------------------------------- train / eval
def train_pose(cfg: TrainConfig, progress: bool = True, smpl_model: Optional[str] = None) -> Dict[str, Any]:
    """Train (or resume) the pose model; writes checkpoints, metrics, curves, ``pose_meta.json``
    and ``skeletons.png`` (a validation clip, predicted vs true). Returns the final metrics."""
    from .spec import SPEC
    return fit_task(cfg, SPEC, progress, smpl_model=smpl_model)


def print_pose_table(rows: Mapping[str, Mapping[str, float]], title: str = "") -> None:
    """Print ``{name: metrics}`` as a table of MPJPE / PA-MPJPE / PEL-MPJPE / accel (mm)."""
    if title:
        print(title)
    w = max([24] + [len(n) for n in rows])
    print(f"{'':<{w}} {'MPJPE':>8} {'PA-MPJPE':>9} {'PEL-MPJPE':>10} {'accel':>8}   (mm)")
    for name, m in rows.items():
        vals = [m.get(k, float("nan")) for k in ("mpjpe", "pa_mpjpe", "pel_mpjpe", "accel_error")]
        print(f"{name:<{w}} {vals[0]:>8.1f} {vals[1]:>9.1f} {vals[2]:>10.1f} {vals[3]:>8.2f}")


def evaluate_pose(checkpoint: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                  print_table: bool = False, smpl_model: Optional[str] = None) -> Dict[str, Any]:
    """Evaluate a trained pose checkpoint on its validation split.

    Writes ``eval_metrics.json`` (model and mean-pose baseline metrics in mm) and
    ``eval_skeletons.png`` (first validation clip, predicted vs true) into ``out_dir``
    (default: the checkpoint's run folder). ``smpl_model`` overrides the body model recorded
    at training time in ``pose_meta.json``.
    """
    ckpt_dir, cfg = load_run_config(checkpoint)
    if cfg.run.task != "pose":
        raise ValueError(f"checkpoint {ckpt_dir} was trained for run.task={cfg.run.task!r}, not 'pose'")
    meta = _read_meta(ckpt_dir.parent) or {}
    if smpl_model is None and meta.get("body_model") == "smpl":
        smpl_model = meta.get("smpl_model")
    body = body_model_for(smpl_model)
    from ...engine.checkpoint import load_checkpoint
    model = build_pose_model(cfg, body_model=body)
    load_checkpoint(ckpt_dir, model, restore_rng=False)
    model.eval()
    train_ds, val_ds, collate = build_pose_data(cfg.data, cfg.run.seed, body_model=body)
    if "mean_joints" in meta:
        stats = {k: torch.tensor(meta[k]) for k in ("mean_joints", "mean_root", "mean_joints_body")
                 if k in meta}
    else:
        stats = training_pose_stats(train_ds, seed=cfg.run.seed)
    loader = build_dataloader(val_ds, cfg.data.batch_size, train=False, seed=cfg.run.seed,
                              num_workers=cfg.data.num_workers, collate_fn=collate)
    task = PoseTask(mean_joints=stats["mean_joints"], mean_root=stats["mean_root"],
                    mean_joints_body=stats.get("mean_joints_body"))
    with torch.no_grad():
        metrics = task.evaluate(model, loader)
    out = Path(out_dir) if out_dir else ckpt_dir.parent
    model_m = {k: metrics[k] for k in ("mpjpe", "pa_mpjpe", "pel_mpjpe", "accel_error") if k in metrics}
    base_m = dict(task.last_baselines.get("world", {}))
    body_m = dict(task.last_baselines.get("body", {}))
    result: Dict[str, Any] = {
        "checkpoint": str(ckpt_dir), **model_m, "baseline": base_m, "baseline_body": body_m,
        "num_samples": metrics["num_samples"], "num_frames": cfg.data.num_frames,
        "dataset": cfg.data.dataset, "body_model": "smpl" if smpl_model else "skeleton", "units": "mm"}
    png = out / "eval_skeletons.png"
    if task.last_example is not None:
        pred, true = task.last_example
        plot_skeleton_sequence(pred, true, str(png), title="validation clip: predicted vs true")
        result["skeleton_png"] = str(png)
    write_json(obj=result, path=out / "eval_metrics.json")
    if print_table:
        rows = {f"{cfg.model.name} ({cfg.model.attention}, {cfg.model.design})": model_m,
                "mean pose, camera frame": base_m}
        if body_m:
            rows["mean pose, body frame"] = body_m
        print_pose_table(rows,
                         f"pose evaluation of {ckpt_dir} on {result['num_samples']} clips "
                         f"(T={cfg.data.num_frames}, {cfg.data.dataset})")
        print(f"metrics: {out / 'eval_metrics.json'}" + (f", skeletons: {png}" if task.last_example else ""))
    return result
