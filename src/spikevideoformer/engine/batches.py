"""What the Trainer reads off a batch: its size, its skipped-sample count, all-bad batches.

A collate function that drops unreadable samples (``data.video_folder.collate_skip_none``,
``tasks.pose.runner.collate_pose``) reports how many it dropped as ``batch.num_skipped`` (or
``batch["num_skipped"]``) and returns ``None`` when *every* sample of the batch was bad.  The
size of such an all-bad batch is recovered from the loader: see :func:`drawn_batch_size`.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

import torch

__all__ = ["first_tensor", "num_skipped", "drawn_batch_size", "new_epoch_acc"]


def first_tensor(obj: Any) -> Optional[torch.Tensor]:
    """The first non-scalar tensor in a (nested) batch; its first dimension is the batch size."""
    if isinstance(obj, torch.Tensor):
        return obj if obj.ndim else None
    items = obj.values() if isinstance(obj, Mapping) else obj if isinstance(obj, (list, tuple)) else \
        vars(obj).values() if hasattr(obj, "__dict__") else ()
    for item in items:
        t = first_tensor(item)
        if t is not None:
            return t
    return None


def num_skipped(batch: Any) -> int:
    """Samples the collate function dropped from ``batch`` (0 if it does not say)."""
    value = batch.get("num_skipped", 0) if isinstance(batch, Mapping) else getattr(batch, "num_skipped", 0)
    return int(value.item() if isinstance(value, torch.Tensor) else value or 0)


def drawn_batch_size(loader: Any, index: int) -> Optional[int]:
    """Samples ``loader`` drew for batch ``index`` (0-based, in the epoch) before any were dropped.

    Exact for a DataLoader with ``batch_size`` and a sized sampler (all batches are full but
    a short last one when ``drop_last=False``); ``batch_size`` when the sampler has no length;
    ``None`` when the loader does not say (``batch_size=None``, a custom batch sampler).
    """
    size = getattr(loader, "batch_size", None)
    if not isinstance(size, int) or size < 1:
        return None
    try:
        total = len(loader.sampler)
    except (TypeError, AttributeError):  # iterable dataset, unsized sampler, not a DataLoader
        return size
    left = total - index * size
    return min(size, left) if left > 0 else size


def new_epoch_acc() -> dict:
    """Running sums of one epoch on one rank (stored in checkpoints for exact mid-epoch resume).

    ``n``/``loss``/``metrics``: trained samples and their sums; ``skipped``: unreadable samples;
    ``empty_steps``: steps without an update because a batch had no readable sample.
    """
    return {"n": 0, "loss": 0.0, "metrics": {}, "grad_norm": 0.0, "clip_steps": 0, "skipped": 0,
            "nonfinite_steps": 0, "empty_steps": 0}
