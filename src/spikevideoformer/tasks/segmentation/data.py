"""Segmentation datasets (registered in :mod:`..datasets`) and label statistics.

* ``synthetic_seg`` — the embedded :class:`SyntheticSegVideos` (splits ``train``/``val``;
  ``data.train_samples``/``data.val_samples`` clips, default 512/128; ``data.size`` pixels;
  ``model.num_classes`` in 2..7). Clips stay in [0, 1].
* ``vspw`` — :class:`VSPWDataset` at ``data.root``; ``model.num_classes`` 124 (123 drops the
  "others" class, ``reduce_zero_label``). Training crops ``data.size``; validation tiles every
  video at its native resolution (batch size 1) and stitches whole videos for mVC.
* ``cityscapes`` — :class:`CityscapesSequenceDataset` at ``data.root``; 19 classes; training
  crops ``data.size``, validation at full resolution; only the last frame of each clip is
  labelled, so no mVC.

``data.train_samples``/``data.val_samples`` cap the real datasets (deterministic subset).
"""
from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from ...engine import capture_rng_state, restore_rng_state
from ...engine.config import TrainConfig
from ..datasets import TaskData, build_dataset, take_subset
from .datasets import CITYSCAPES_CLASSES, IGNORE_INDEX, CityscapesSequenceDataset, VSPWDataset
from .synthetic import SyntheticSegVideos
from .task import unpack_seg_batch

__all__ = ["build_segmentation_data", "build_synthetic_seg", "build_vspw", "build_cityscapes",
           "class_frequencies"]

DEFAULT_SYNTHETIC_SAMPLES = (512, 128)


def build_segmentation_data(cfg: TrainConfig, splits=("train", "val")) -> dict[str, Any]:
    """``{"train": ds, "val": ds, "class_names": [...], "val_batch_size": int}`` for the config.

    Only the requested splits are built (``evaluate_segmentation`` needs ``val`` only).
    """
    d = cfg.data
    data = build_dataset("segmentation", d, num_classes=cfg.model.num_classes, seed=cfg.run.seed,
                         splits=splits)
    out: dict[str, Any] = {s: getattr(data, s) for s in ("train", "val") if getattr(data, s) is not None}
    out["class_names"] = data.classes
    out["val_batch_size"] = data.val_batch_size or d.batch_size
    return out


def build_synthetic_seg(d: Any, *, num_classes: int, seed: int, splits=("train", "val"), **_) -> TaskData:
    """The embedded :class:`SyntheticSegVideos` (requested splits only)."""
    counts = dict(zip(("train", "val"), DEFAULT_SYNTHETIC_SAMPLES))
    samples = {"train": d.train_samples or counts["train"], "val": d.val_samples or counts["val"]}
    out = {s: SyntheticSegVideos(s, samples.get(s, counts["val"]), d.num_frames, d.size, num_classes, seed)
           for s in splits}
    return TaskData(out.get("train"), out.get("val"), list(out[splits[0]].class_names))


def _need_root(d: Any) -> None:
    if not d.root:
        raise ValueError(f"data.root is required for data.dataset={d.dataset!r} "
                         f"(layout: docs/segmentation_data.md)")


def _capped(d: Any, seed: int, train, val, classes, val_batch_size=None) -> TaskData:
    train = take_subset(train, d.train_samples, seed) if train is not None else None
    val = take_subset(val, d.val_samples, seed) if val is not None else None
    return TaskData(train, val, classes, val_batch_size=val_batch_size)


def build_vspw(d: Any, *, num_classes: int, seed: int, splits=("train", "val"), **_) -> TaskData:
    """VSPW at ``data.root``; validation videos at native resolution, batch size 1."""
    _need_root(d)
    k = num_classes
    if k not in (VSPWDataset.NUM_CLASSES, VSPWDataset.NUM_CLASSES - 1):
        raise ValueError(f"VSPW has 124 classes (123 without 'others'); model.num_classes={k}")
    kw = dict(num_frames=d.num_frames, reduce_zero_label=k == VSPWDataset.NUM_CLASSES - 1)
    train = VSPWDataset(d.root, "train", size=d.size, train=True, **kw) if "train" in splits else None
    val = VSPWDataset(d.root, "val", size=None, train=False, return_meta=True, **kw) if "val" in splits else None
    # native resolution differs between videos: one per validation batch
    return _capped(d, seed, train, val, [str(i) for i in range(k)], 1 if val is not None else None)


def build_cityscapes(d: Any, *, num_classes: int, seed: int, splits=("train", "val"), **_) -> TaskData:
    """Cityscapes sequences at ``data.root`` (19 train ids); validation at full resolution."""
    _need_root(d)
    if num_classes != CityscapesSequenceDataset.NUM_CLASSES:
        raise ValueError(f"Cityscapes has 19 train ids; model.num_classes={num_classes}")
    train = CityscapesSequenceDataset(d.root, "train", d.num_frames, size=d.size, train=True) \
        if "train" in splits else None
    val = CityscapesSequenceDataset(d.root, "val", d.num_frames, size=None, train=False) \
        if "val" in splits else None
    return _capped(d, seed, train, val, list(CITYSCAPES_CLASSES))


def class_frequencies(dataset: Dataset, num_classes: int, max_items: int = 32) -> torch.Tensor:
    """Labelled-pixel counts per class over the first ``max_items`` items of ``dataset``
    (random augmentations do not consume the global RNG streams: they are restored)."""
    counts = torch.zeros(num_classes, dtype=torch.float64)
    rng = capture_rng_state()
    try:
        for i in range(min(max_items, len(dataset))):  # type: ignore[arg-type]
            m = unpack_seg_batch(dataset[i])[1]
            m = m[(m != IGNORE_INDEX) & (m >= 0) & (m < num_classes)]
            counts += torch.bincount(m.reshape(-1), minlength=num_classes)[:num_classes].double()
    finally:
        restore_rng_state(rng)
    return counts
