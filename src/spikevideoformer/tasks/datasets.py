"""The dataset table shared by the tasks: ``data.dataset`` name → (task, builder); the
:class:`TaskData` a builder returns; input channels per modality; a seeded subset.

A builder is ``builder(data_cfg, *, num_classes, seed, splits, **options) -> TaskData`` (it may
build more splits than asked). Entries are ``"module:function"`` strings imported on first use,
or callables. A new dataset::

    def build_my_clips(data_cfg, *, num_classes, seed, splits, **options):
        return TaskData(MyClips("train", ...), MyClips("val", ...), classes=[...])
    register_dataset("my_clips", "classification", build_my_clips)
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence, Union

import torch
from torch.utils.data import Dataset, Subset

__all__ = ["MODALITY_CHANNELS", "TaskData", "register_dataset", "dataset_names", "build_dataset",
           "take_subset"]

# input channels of the model per data.modality (event: ON/OFF polarity frames)
MODALITY_CHANNELS = {"rgb": 3, "gray": 1, "event": 2}


@dataclass
class TaskData:
    """The datasets of a run: ``train`` / ``val`` (None where not built), class names, the
    collate function, the validation batch size (None: ``data.batch_size``) and task extras."""

    train: Optional[Dataset] = None
    val: Optional[Dataset] = None
    classes: list = field(default_factory=list)
    collate: Optional[Callable] = None
    val_batch_size: Optional[int] = None
    extras: dict = field(default_factory=dict)


_CLS, _POSE, _SEG = ("spikevideoformer.tasks.classification.data", "spikevideoformer.tasks.pose.data",
                     "spikevideoformer.tasks.segmentation.data")
# name → (task, builder)
_DATASETS: dict[str, tuple[str, Union[str, Callable[..., TaskData]]]] = {
    "moving_digits": ("classification", f"{_CLS}:build_moving_digits"),
    "digit_relay": ("classification", f"{_CLS}:build_digit_relay"),
    "video_folder": ("classification", f"{_CLS}:build_video_folder"),
    "video_list": ("classification", f"{_CLS}:build_video_list"),
    "dvs_gesture": ("classification", f"{_CLS}:build_dvs_gesture"),
    "synthetic_pose": ("pose", f"{_POSE}:build_synthetic_pose"),
    "pose_folder": ("pose", f"{_POSE}:build_pose_folder"),
    "synthetic_seg": ("segmentation", f"{_SEG}:build_synthetic_seg"),
    "vspw": ("segmentation", f"{_SEG}:build_vspw"),
    "cityscapes": ("segmentation", f"{_SEG}:build_cityscapes"),
}


def register_dataset(name: str, task: str, builder: Union[str, Callable[..., TaskData]]) -> None:
    """Add dataset ``name`` for ``task`` (a builder function or its ``"module:function"``)."""
    if not callable(builder) and not (isinstance(builder, str) and ":" in builder):
        raise TypeError("builder must be a function or a 'module:function' string")
    _DATASETS[name] = (task, builder)


def dataset_names(task: Optional[str] = None) -> tuple[str, ...]:
    """Registered dataset names (of ``task`` only, if given)."""
    return tuple(n for n, (t, _) in _DATASETS.items() if task is None or t == task)


def build_dataset(task: str, data_cfg: Any, *, num_classes: int = 0, seed: int = 0,
                  splits: Sequence[str] = ("train", "val"), **options) -> TaskData:
    """:class:`TaskData` of ``data_cfg.dataset`` for ``task``; an unknown name, or one of
    another task, raises ValueError listing the task's datasets."""
    name = data_cfg.dataset
    entry = _DATASETS.get(name)
    if entry is None or entry[0] != task:
        what = f"unknown data.dataset {name!r}" if entry is None else \
            f"data.dataset {name!r} is a {entry[0]} dataset, not one"
        raise ValueError(f"{what} for run.task={task}; {task} datasets: "
                         f"{', '.join(dataset_names(task)) or 'none registered'}")
    builder = entry[1]
    if isinstance(builder, str):
        module, attr = builder.split(":")
        builder = getattr(importlib.import_module(module), attr)
    return builder(data_cfg, num_classes=num_classes, seed=seed, splits=tuple(splits), **options)


def take_subset(ds: Dataset, n: Optional[int], seed: int, keep_order: bool = True) -> Dataset:
    """Deterministic random subset of at most ``n`` items (``keep_order``: in dataset order,
    else in the drawn order); keeps ``classes``."""
    if n is None or n >= len(ds):  # type: ignore[arg-type]
        return ds
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds), generator=g)[:n].tolist()  # type: ignore[arg-type]
    sub = Subset(ds, sorted(idx) if keep_order else idx)
    if hasattr(ds, "classes"):
        sub.classes = ds.classes  # type: ignore[attr-defined]
    return sub
