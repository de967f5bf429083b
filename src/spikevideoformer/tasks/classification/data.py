"""Classification datasets from a :class:`DataConfig`, registered in :mod:`..datasets`.

Datasets: ``moving_digits`` (embedded temporal task), ``digit_relay`` (embedded
spatio-temporal task: the order of events at four places), ``video_folder`` (Kinetics layout),
``video_list`` (``root/train.csv`` + ``root/val.csv``), ``dvs_gesture`` (DVS128 Gesture on disk).
Modalities: ``rgb`` (3 channels), ``gray`` (1) and ``event`` (2: ON/OFF counts from the
video-to-events simulator).
"""
from __future__ import annotations

import os
from typing import Any

import torch
from torch.utils.data import Dataset

from ...data.digit_relay import RELAY_CLASSES, DigitRelay
from ...data.events.simulator import frames_from_video_events
from ...data.moving_digits import MovingDigits
from ...data.video_folder import VideoFolder, VideoList, collate_skip_none
from ..datasets import MODALITY_CHANNELS, TaskData, build_dataset, take_subset

__all__ = ["MODALITY_CHANNELS", "build_classification_data", "ModalityDataset", "to_modality",
           "build_moving_digits", "build_digit_relay", "build_video_folder", "build_video_list",
           "build_dvs_gesture"]


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
    data = build_dataset("classification", data_cfg, num_classes=num_classes, seed=seed)
    return data.train, data.val, data.classes, data.collate


def _frames(data_cfg: Any) -> int:
    """Video frames per clip: events consume one extra (T + 1 frames → T event frames)."""
    return data_cfg.num_frames + (1 if data_cfg.modality == "event" else 0)


def _in_modality(train: Dataset, val: Dataset, modality: str) -> TaskData:
    classes = list(getattr(train, "classes", None) or getattr(train.dataset, "classes"))
    if modality != "rgb":
        train, val = ModalityDataset(train, modality), ModalityDataset(val, modality)
    return TaskData(train, val, classes, collate_skip_none)


def build_moving_digits(data_cfg: Any, *, num_classes: int, seed: int, **_) -> TaskData:
    """The embedded MovingDigits task (label = direction of motion)."""
    kw = dict(num_frames=_frames(data_cfg), size=data_cfg.size, num_classes=num_classes, seed=seed)
    train = MovingDigits("train", num_samples=data_cfg.train_samples, **kw)
    val = MovingDigits("val", num_samples=data_cfg.val_samples, **kw)
    return _in_modality(train, val, data_cfg.modality)


def build_digit_relay(data_cfg: Any, *, num_classes: int, seed: int, **_) -> TaskData:
    """The embedded DigitRelay task (label = the route the activity takes through four digits);
    frames >= 64x64 so that stages 3-4 see >= 4x4 tokens per frame, T >= 8."""
    checks = (("data.size", data_cfg.size, data_cfg.size >= 64, ">= 64"),
              ("data.num_frames", data_cfg.num_frames,
               data_cfg.num_frames >= 8 and data_cfg.num_frames % 4 == 0, ">= 8 and a multiple of 4"),
              ("model.num_classes", num_classes, num_classes in RELAY_CLASSES,
               f"one of {sorted(RELAY_CLASSES)}"),
              ("data.modality", data_cfg.modality, data_cfg.modality in ("rgb", "gray"), "rgb or gray"))
    for key, value, ok, need in checks:
        if not ok:
            raise ValueError(f"data.dataset=digit_relay needs {key} {need}, got {value!r}")
    kw = dict(num_frames=data_cfg.num_frames, size=data_cfg.size, num_classes=num_classes, seed=seed,
              channels=MODALITY_CHANNELS[data_cfg.modality])
    train = DigitRelay("train", num_samples=data_cfg.train_samples, **kw)
    val = DigitRelay("val", num_samples=data_cfg.val_samples, **kw)
    return TaskData(train, val, list(train.classes), collate_skip_none)


def _videos(data_cfg: Any, num_classes: int, seed: int, make) -> TaskData:
    """Videos on disk at ``data.root``: ``make(root, common, views) -> (train, val)``."""
    if not data_cfg.root:
        raise ValueError(f"data.root is required for data.dataset={data_cfg.dataset!r}")
    norm = {} if data_cfg.modality == "rgb" else dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    common = dict(num_frames=_frames(data_cfg), size=data_cfg.size, **norm)
    views = dict(num_clips=data_cfg.eval_clips, num_crops=data_cfg.eval_crops)
    train, val = make(data_cfg.root, common, views)
    if len(train.classes) != num_classes:
        raise ValueError(f"model.num_classes={num_classes} but the dataset has "
                         f"{len(train.classes)} classes: {train.classes[:10]}")
    train = take_subset(train, data_cfg.train_samples, seed, keep_order=False)
    val = take_subset(val, data_cfg.val_samples, seed, keep_order=False)
    return _in_modality(train, val, data_cfg.modality)


def build_video_folder(data_cfg: Any, *, num_classes: int, seed: int, **_) -> TaskData:
    """Kinetics layout ``root/{train,val}/<class>/<video>``."""
    def make(root, common, views):
        train = VideoFolder(root, "train", train=True, **common)
        return train, VideoFolder(root, "val", train=False, classes=train.classes, **views, **common)
    return _videos(data_cfg, num_classes, seed, make)


def build_video_list(data_cfg: Any, *, num_classes: int, seed: int, **_) -> TaskData:
    """``root/train.csv`` + ``root/val.csv`` (or ``.txt``) lists of ``path,label``."""
    def make(root, common, views):
        train = VideoList(_list_file(root, "train"), train=True, **common)
        return train, VideoList(_list_file(root, "val"), classes=train.classes, train=False,
                                **views, **common)
    return _videos(data_cfg, num_classes, seed, make)


def build_dvs_gesture(data_cfg: Any, *, num_classes: int, seed: int, **_) -> TaskData:
    """DVS128 Gesture recordings on disk: already 2-channel event frames."""
    if data_cfg.modality != "event" or not data_cfg.root:
        raise ValueError("data.dataset=dvs_gesture needs data.modality=event and data.root")
    from ...data.events.dvs_gesture import DVSGesture
    kw = dict(num_frames=data_cfg.num_frames, size=data_cfg.size)
    train, val = DVSGesture(data_cfg.root, "train", **kw), DVSGesture(data_cfg.root, "test", **kw)
    if len(train.classes) != num_classes:
        raise ValueError(f"model.num_classes={num_classes} but DVS128 Gesture has {len(train.classes)}")
    train = take_subset(train, data_cfg.train_samples, seed, keep_order=False)
    val = take_subset(val, data_cfg.val_samples, seed, keep_order=False)
    return TaskData(train, val, list(train.classes), collate_skip_none)
