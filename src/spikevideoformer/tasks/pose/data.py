"""Pose datasets (registered in :mod:`..datasets`), batching and training-set statistics.

* ``synthetic_pose`` — the embedded :class:`~.synthetic.SyntheticPoseVideos` task
  (``data.train_samples`` / ``data.val_samples`` clips, default 1024 / 256, of
  ``data.num_frames`` frames at ``data.size`` pixels);
* ``pose_folder`` — :class:`~.dataset.PoseSequenceDataset` at ``data.root``
  (``root/train`` for training, ``root/val`` or else ``root/test`` for validation; the
  sample counts cap the number of windows). Format: ``docs/pose_data_format.md``.

Modalities (``data.modality``): ``rgb`` (3 channels; ImageNet-normalised for ``pose_folder``),
``gray`` (1), ``event`` (2: ON/OFF polarity frames — rendered by the synthetic task; for
``pose_folder`` the frames must be event images with ON counts in R and OFF counts in G).
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from ...data.transforms import normalize
from ..datasets import MODALITY_CHANNELS, TaskData, build_dataset, take_subset
from .dataset import PoseSequenceDataset
from .rotations import rot6d_to_matrix
from .synthetic import SyntheticPoseVideos, sample_motion

__all__ = ["build_pose_data", "build_synthetic_pose", "build_pose_folder", "collate_pose",
           "training_pose_stats"]

DEFAULT_SAMPLES = {"train": 1024, "val": 256}
CACHE_LIMIT_BYTES = 1 << 30  # synthetic clips are cached in memory below this size


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


def build_pose_data(data_cfg: Any, seed: int = 0, body_model: Optional[torch.nn.Module] = None):
    """``(train_dataset, val_dataset, collate_fn)`` for a :class:`DataConfig`."""
    modality = data_cfg.modality
    if modality not in MODALITY_CHANNELS:
        raise ValueError(f"data.modality must be one of {list(MODALITY_CHANNELS)}, got {modality!r}")
    data = build_dataset("pose", data_cfg, seed=seed, body_model=body_model)
    return data.train, data.val, data.collate


def build_synthetic_pose(data_cfg: Any, *, seed: int, **_) -> TaskData:
    """The embedded :class:`SyntheticPoseVideos` (cached in memory when small enough)."""
    T, size = data_cfg.num_frames, data_cfg.size
    kw = dict(num_frames=T, size=size, seed=seed, channels=MODALITY_CHANNELS[data_cfg.modality])
    n_train = data_cfg.train_samples or DEFAULT_SAMPLES["train"]
    train: Dataset = SyntheticPoseVideos("train", n_train, **kw)
    val: Dataset = SyntheticPoseVideos("val", data_cfg.val_samples or DEFAULT_SAMPLES["val"], **kw)
    if data_cfg.num_workers == 0:
        per_clip = T * kw["channels"] * size * size * 4
        if (len(train) + len(val)) * per_clip <= CACHE_LIMIT_BYTES:
            train, val = _MemoryCache(train), _MemoryCache(val)
    return TaskData(train, val, collate=collate_pose)


def build_pose_folder(data_cfg: Any, *, seed: int, body_model: Optional[torch.nn.Module] = None,
                      **_) -> TaskData:
    """:class:`PoseSequenceDataset` at ``data.root`` (``train``; ``val``, else ``test``)."""
    if not data_cfg.root:
        raise ValueError("data.root is required for data.dataset='pose_folder'")
    modality, root = data_cfg.modality, os.fspath(data_cfg.root)
    val_split = "val" if os.path.isdir(os.path.join(root, "val")) else "test"
    kw = dict(num_frames=data_cfg.num_frames, size=data_cfg.size,
              channels=1 if modality == "gray" else 3, body_model=body_model)
    train = take_subset(PoseSequenceDataset(root, "train", train=True, **kw), data_cfg.train_samples, seed)
    val = take_subset(PoseSequenceDataset(root, val_split, train=False, **kw), data_cfg.val_samples, seed)
    if modality == "rgb":
        train, val = _ClipTransform(train, normalize), _ClipTransform(val, normalize)
    elif modality == "event":
        train, val = _ClipTransform(train, _event_from_rgb), _ClipTransform(val, _event_from_rgb)
    return TaskData(train, val, collate=collate_pose)


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
