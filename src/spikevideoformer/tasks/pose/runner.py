"""Train / evaluate the pose-tracking model (``svf train`` with ``run.task: pose``, ``svf eval``).

Datasets (``data.dataset``):

* ``synthetic_pose`` — the embedded :class:`~.synthetic.SyntheticPoseVideos` task
  (``data.train_samples`` / ``data.val_samples`` clips, default 1024 / 256, of
  ``data.num_frames`` frames at ``data.size`` pixels);
* ``pose_folder`` — :class:`~.dataset.PoseSequenceDataset` at ``data.root``
  (``root/train`` for training, ``root/val`` or else ``root/test`` for validation; the
  sample counts cap the number of windows). Format: ``docs/pose_data_format.md``.

Modalities (``data.modality``): ``rgb`` (3 channels; ImageNet-normalised for ``pose_folder``),
``gray`` (1), ``event`` (2: ON/OFF polarity frames — rendered by the synthetic task; for
``pose_folder`` the frames must be event images with ON counts in R and OFF counts in G).

Body model: the built-in :class:`~.skeleton.SimpleSkeleton` unless ``smpl_model=PATH`` is
given (the licensed SMPL files, see :data:`~.smpl.SMPL_HELP`). The choice is recorded in
``<out_dir>/pose_meta.json`` together with the training means used by the mean-pose baseline,
and :func:`evaluate_pose` reads it back.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from ...data.transforms import normalize
from ...engine import Trainer, build_dataloader, init_distributed, seed_everything
from ...engine.config import TrainConfig
from ..common import build_backbone, load_run_config, write_json
from .dataset import PoseSequenceDataset
from .head import PoseSpikeVideoFormer
from .render import plot_skeleton_sequence
from .rotations import rot6d_to_matrix
from .smpl import load_body_model
from .synthetic import SyntheticPoseVideos, sample_motion
from .task import PoseTask

__all__ = ["POSE_DATASETS", "MODALITY_CHANNELS", "build_pose_model", "build_pose_data", "collate_pose",
           "training_pose_stats", "train_pose", "evaluate_pose", "print_pose_table"]

POSE_DATASETS = ("synthetic_pose", "pose_folder")
MODALITY_CHANNELS = {"rgb": 3, "gray": 1, "event": 2}
META_FILE = "pose_meta.json"
DEFAULT_SAMPLES = {"train": 1024, "val": 256}
CACHE_LIMIT_BYTES = 1 << 30  # synthetic clips are cached in memory below this size


# --------------------------------------------------------------------------- model
def _body_model(smpl_model: Optional[str]) -> torch.nn.Module:
    return load_body_model("smpl", smpl_model) if smpl_model else load_body_model("skeleton")


def build_pose_model(cfg: TrainConfig, smpl_model: Optional[str] = None,
                     body_model: Optional[torch.nn.Module] = None) -> PoseSpikeVideoFormer:
    """The pose model a config describes: backbone (``num_classes`` ignored) + pose head + body
    model (``body_model``, else SMPL from ``smpl_model``, else the built-in skeleton)."""
    if cfg.data.modality not in MODALITY_CHANNELS:
        raise ValueError(f"data.modality must be one of {list(MODALITY_CHANNELS)}, got {cfg.data.modality!r}")
    backbone = build_backbone(cfg.model, MODALITY_CHANNELS[cfg.data.modality], 0)
    body = body_model if body_model is not None else _body_model(smpl_model)
    return PoseSpikeVideoFormer(backbone, body_model=body)


# --------------------------------------------------------------------------- data
def collate_pose(items: Sequence[Any]):
    """Stack ``(clip, target dict)`` items into ``(clips [B, ...], {key: [B, ...]})``; None items
    are dropped (None if nothing is left)."""
    items = [it for it in items if it is not None]
    if not items:
        return None
    clips = torch.stack([c for c, _ in items])
    target = {k: torch.stack([torch.as_tensor(t[k]) for _, t in items]) for k in items[0][1]}
    return clips, target


class _ClipTransform(Dataset):
    """Applies ``fn`` to every clip of a ``(clip, target)`` dataset."""

    def __init__(self, base: Dataset, fn) -> None:
        self.base, self.fn = base, fn

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int):
        clip, target = self.base[i]
        return self.fn(clip), target


class _MemoryCache(Dataset):
    """Keeps deterministic items in memory after the first access (synthetic clips)."""

    def __init__(self, base: Dataset) -> None:
        self.base = base
        self.items: Dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int):
        if i not in self.items:
            self.items[i] = self.base[i]
        return self.items[i]


def _event_from_rgb(clip: torch.Tensor) -> torch.Tensor:
    return clip[:, :2].contiguous()


def _cap(ds: Dataset, n: Optional[int], seed: int) -> Dataset:
    if n is None or n >= len(ds):  # type: ignore[arg-type]
        return ds
    g = torch.Generator().manual_seed(seed)
    return Subset(ds, sorted(torch.randperm(len(ds), generator=g)[:n].tolist()))  # type: ignore[arg-type]


def build_pose_data(data_cfg: Any, seed: int = 0, body_model: Optional[torch.nn.Module] = None):
    """``(train_dataset, val_dataset, collate_fn)`` for a :class:`DataConfig`."""
    modality = data_cfg.modality
    if modality not in MODALITY_CHANNELS:
        raise ValueError(f"data.modality must be one of {list(MODALITY_CHANNELS)}, got {modality!r}")
    T, size = data_cfg.num_frames, data_cfg.size
    if data_cfg.dataset == "synthetic_pose":
        kw = dict(num_frames=T, size=size, seed=seed, channels=MODALITY_CHANNELS[modality])
        n_train = data_cfg.train_samples or DEFAULT_SAMPLES["train"]
        train: Dataset = SyntheticPoseVideos("train", n_train, **kw)
        val: Dataset = SyntheticPoseVideos("val", data_cfg.val_samples or DEFAULT_SAMPLES["val"], **kw)
        if data_cfg.num_workers == 0:
            per_clip = T * kw["channels"] * size * size * 4
            if (len(train) + len(val)) * per_clip <= CACHE_LIMIT_BYTES:
                train, val = _MemoryCache(train), _MemoryCache(val)
    elif data_cfg.dataset == "pose_folder":
        if not data_cfg.root:
            raise ValueError("data.root is required for data.dataset='pose_folder'")
        root = os.fspath(data_cfg.root)
        val_split = "val" if os.path.isdir(os.path.join(root, "val")) else "test"
        kw = dict(num_frames=T, size=size, channels=1 if modality == "gray" else 3, body_model=body_model)
        train = _cap(PoseSequenceDataset(root, "train", train=True, **kw), data_cfg.train_samples, seed)
        val = _cap(PoseSequenceDataset(root, val_split, train=False, **kw), data_cfg.val_samples, seed)
        if modality == "rgb":
            train, val = _ClipTransform(train, normalize), _ClipTransform(val, normalize)
        elif modality == "event":
            train, val = _ClipTransform(train, _event_from_rgb), _ClipTransform(val, _event_from_rgb)
    else:
        raise ValueError(f"unknown data.dataset {data_cfg.dataset!r} for run.task=pose; "
                         f"use one of {list(POSE_DATASETS)}")
    return train, val, collate_pose


def _unwrap(ds: Dataset, idx: Sequence[int]) -> Tuple[Dataset, List[int]]:
    while True:
        if isinstance(ds, Subset):
            idx = [int(ds.indices[i]) for i in idx]
            ds = ds.dataset
        elif isinstance(ds, (_ClipTransform, _MemoryCache)):
            ds = ds.base
        else:
            return ds, list(idx)


def _targets(ds: Dataset, idx: Sequence[int]) -> Dict[str, torch.Tensor]:
    """Targets of items ``idx`` without decoding or rendering frames where possible."""
    base, idx = _unwrap(ds, idx)
    if isinstance(base, SyntheticPoseVideos):  # motion only, no rendering
        extra = 1 if base.channels == 2 else 0
        mot = [sample_motion(base.rng(i), base.num_frames + extra) for i in idx]
        rot = torch.from_numpy(np.stack([m[0] for m in mot])[:, extra:]).float()
        betas = torch.from_numpy(np.stack([m[1] for m in mot])).float()
        transl = torch.from_numpy(np.stack([m[2] for m in mot])[:, extra:]).float()
        with torch.no_grad():
            joints = base.body(rot, betas, transl)
        ones = torch.ones(len(idx), dtype=torch.bool)
        return {"joints": joints, "root_rot": rot[:, :, 0], "betas": betas, "transl": transl,
                "has_joints": ones, "has_smpl": ones}
    if isinstance(base, PoseSequenceDataset):  # annotations are in memory
        ts = [base._target(base.sequences[k], st) for k, st in (base.windows[i] for i in idx)]
        for t in ts:
            t["root_rot"] = t["rotmats"][:, 0]
    else:
        ts = [base[i][1] for i in idx]
        for t in ts:
            t["root_rot"] = rot6d_to_matrix(t["pose_6d"][:, 0])
    keys = ("joints", "root_rot", "betas", "transl", "has_joints", "has_smpl")
    return {k: torch.stack([torch.as_tensor(t[k]) if k in t else torch.tensor(True) for t in ts])
            for k in keys}


def training_pose_stats(ds: Dataset, max_samples: int = 1024, seed: int = 0) -> Dict[str, torch.Tensor]:
    """Means over (up to ``max_samples``) training clips: ``mean_joints [24, 3]`` (root-relative
    mean pose in the data frame), ``mean_joints_body [24, 3]`` (root-relative mean pose in the
    body frame, i.e. with the global root orientation removed; clips with SMPL parameters, else
    equal to ``mean_joints``), ``mean_root [3]`` (pelvis position), ``mean_betas [10]``,
    ``mean_transl [3]``."""
    n = len(ds)  # type: ignore[arg-type]
    if n == 0:
        raise ValueError("training set is empty")
    idx = list(range(n)) if n <= max_samples else sorted(
        torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:max_samples].tolist())
    t = _targets(ds, idx)
    hj, hs = t["has_joints"].bool().reshape(-1), t["has_smpl"].bool().reshape(-1)
    joints = t["joints"].float()[hj] if bool(hj.any()) else torch.zeros(1, 1, 24, 3)
    rel = joints - joints[:, :, :1]
    both = hj & hs
    if bool(both.any()):
        r = t["joints"].float()[both]
        r = r - r[:, :, :1]
        body = torch.einsum("btji,btkj->btki", t["root_rot"].float()[both], r).mean((0, 1))  # R^T x
    else:
        body = rel.mean((0, 1))
    return {
        "mean_joints": rel.mean((0, 1)),
        "mean_joints_body": body,
        "mean_root": joints[:, :, 0].mean((0, 1)),
        "mean_betas": t["betas"].float()[hs].mean(0) if bool(hs.any()) else torch.zeros(10),
        "mean_transl": t["transl"].float()[hs].mean((0, 1)) if bool(hs.any()) else torch.zeros(3),
    }


def _meta(stats: Mapping[str, torch.Tensor], smpl_model: Optional[str], task: PoseTask) -> Dict[str, Any]:
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
    info = init_distributed(cfg.run.device)
    seed_everything(cfg.run.seed, cfg.run.deterministic)
    body = _body_model(smpl_model)
    train_ds, val_ds, collate = build_pose_data(cfg.data, cfg.run.seed, body_model=body)
    stats = training_pose_stats(train_ds, seed=cfg.run.seed)
    model = build_pose_model(cfg, body_model=body)
    model.init_output_bias(betas=stats["mean_betas"], transl=stats["mean_transl"])
    task = PoseTask(mean_joints=stats["mean_joints"], mean_root=stats["mean_root"],
                    mean_joints_body=stats["mean_joints_body"])
    kw = dict(info=info, seed=cfg.run.seed, num_workers=cfg.data.num_workers, collate_fn=collate)
    train_loader = build_dataloader(train_ds, cfg.data.batch_size, train=True, **kw)
    val_loader = build_dataloader(val_ds, cfg.data.batch_size, train=False, **kw)
    trainer = Trainer(model, task, cfg, train_loader, val_loader, progress=progress, dist_info=info)
    out = Path(cfg.run.out_dir)
    if trainer.is_main:
        write_json(obj=_meta(stats, smpl_model, task), path=out / META_FILE)
    result = trainer.fit()
    if trainer.is_main and task.last_example is not None:
        pred, true = task.last_example
        plot_skeleton_sequence(pred, true, str(out / "skeletons.png"),
                               title=f"validation clip, epoch {trainer.epoch}")
    return result


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
    body = _body_model(smpl_model)
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
