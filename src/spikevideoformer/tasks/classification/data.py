"""Build classification datasets and loaders from a :class:`DataConfig`.

Datasets: ``moving_digits`` (embedded temporal task), ``video_folder`` (Kinetics layout),
``video_list`` (``root/train.csv`` + ``root/val.csv``), ``dvs_gesture`` (DVS128 Gesture on disk). Modalities: ``rgb`` (3 channels),
``gray`` (1) and ``event`` (2: ON/OFF counts from the video-to-events simulator).
"""
from __future__ import annotations

import os
from typing import Any

import torch
from torch.utils.data import Dataset

from ...data.events.simulator import frames_from_video_events
from ...data.moving_digits import MovingDigits
from ...data.video_folder import VideoFolder, VideoList, collate_skip_none

__all__ = ["MODALITY_CHANNELS", "build_classification_data", "ModalityDataset", "to_modality"]

MODALITY_CHANNELS = {"rgb": 3, "gray": 1, "event": 2}


def to_modality(clip: torch.Tensor, modality: str) -> torch.Tensor:
    """Convert an RGB clip ``[T(+1), 3, H, W]`` in [0, 1] to the modality's input.

    ``event`` consumes T+1 frames and returns T event frames (ON/OFF counts of the change
    between consecutive frames, simulator defaults: contrast threshold 0.2).
    """
    if modality == "rgb":
        return clip
    if modality == "gray":
        return clip.mean(dim=-3, keepdim=True)
    if modality == "event":
        return torch.from_numpy(frames_from_video_events(clip.numpy())).float()
    raise ValueError(f"modality must be one of {list(MODALITY_CHANNELS)}, got {modality!r}")


class ModalityDataset(Dataset):
    """Wraps a ``(clip, label)`` dataset and converts every clip with :func:`to_modality`."""

    def __init__(self, base: Dataset, modality: str) -> None:
        self.base, self.modality = base, modality
        self.classes = getattr(base, "classes", None)

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> Any:
        item = self.base[i]
        if item is None:  # unreadable video, skipped by the collate function
            return None
        clip, label = item
        if clip.dim() == 5:  # multi-view [V, T, C, H, W]
            return torch.stack([to_modality(c, self.modality) for c in clip]), label
        return to_modality(clip, self.modality), label


def _list_file(root: str, split: str) -> str:
    for ext in (".csv", ".txt"):
        p = os.path.join(root, split + ext)
        if os.path.isfile(p):
            return p
    raise FileNotFoundError(f"no {split}.csv or {split}.txt list in {root!r}")


def build_classification_data(data_cfg: Any, num_classes: int, seed: int = 0):
    """Return ``(train_dataset, val_dataset, class_names, collate_fn)`` for the config."""
    modality = data_cfg.modality
    if modality not in MODALITY_CHANNELS:
        raise ValueError(f"data.modality must be one of {list(MODALITY_CHANNELS)}, got {modality!r}")
    # events consume one extra video frame per clip (T + 1 frames → T event frames)
    frames = data_cfg.num_frames + (1 if modality == "event" else 0)
    name = data_cfg.dataset
    if name == "moving_digits":
        kw = dict(num_frames=frames, size=data_cfg.size, num_classes=num_classes, seed=seed)
        train = MovingDigits("train", num_samples=data_cfg.train_samples, **kw)
        val = MovingDigits("val", num_samples=data_cfg.val_samples, **kw)
    elif name in ("video_folder", "video_list"):
        if not data_cfg.root:
            raise ValueError(f"data.root is required for data.dataset={name!r}")
        norm = {} if modality == "rgb" else dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
        common = dict(num_frames=frames, size=data_cfg.size, **norm)
        views = dict(num_clips=data_cfg.eval_clips, num_crops=data_cfg.eval_crops)
        if name == "video_folder":
            train = VideoFolder(data_cfg.root, "train", train=True, **common)
            val = VideoFolder(data_cfg.root, "val", train=False, classes=train.classes, **views, **common)
        else:
            train = VideoList(_list_file(data_cfg.root, "train"), train=True, **common)
            val = VideoList(_list_file(data_cfg.root, "val"), classes=train.classes, train=False,
                            **views, **common)
        if len(train.classes) != num_classes:
            raise ValueError(f"model.num_classes={num_classes} but the dataset has "
                             f"{len(train.classes)} classes: {train.classes[:10]}")
        train, val = _cap(train, data_cfg.train_samples, seed), _cap(val, data_cfg.val_samples, seed)
    elif name == "dvs_gesture":  # event recordings on disk: already 2-channel event frames
        if modality != "event" or not data_cfg.root:
            raise ValueError("data.dataset=dvs_gesture needs data.modality=event and data.root")
        from ...data.events.dvs_gesture import DVSGesture
        kw = dict(num_frames=data_cfg.num_frames, size=data_cfg.size)
        train, val = DVSGesture(data_cfg.root, "train", **kw), DVSGesture(data_cfg.root, "test", **kw)
        if len(train.classes) != num_classes:
            raise ValueError(f"model.num_classes={num_classes} but DVS128 Gesture has {len(train.classes)}")
        train, val = _cap(train, data_cfg.train_samples, seed), _cap(val, data_cfg.val_samples, seed)
        return train, val, list(train.classes), collate_skip_none
    else:
        raise ValueError(f"unknown data.dataset {name!r} for classification; use moving_digits, "
                         f"video_folder, video_list or dvs_gesture")
    classes = list(getattr(train, "classes", None) or getattr(train.dataset, "classes"))
    if modality != "rgb":
        train, val = ModalityDataset(train, modality), ModalityDataset(val, modality)
    return train, val, classes, collate_skip_none


def _cap(ds: Dataset, n: int | None, seed: int) -> Dataset:
    """Deterministic random subset of at most ``n`` items (keeps ``classes``)."""
    if n is None or n >= len(ds):  # type: ignore[arg-type]
        return ds
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds), generator=g)[:n].tolist()  # type: ignore[arg-type]
    sub = torch.utils.data.Subset(ds, idx)
    sub.classes = ds.classes  # type: ignore[attr-defined]
    return sub
