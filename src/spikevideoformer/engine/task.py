"""The protocol a task object implements for the :class:`~.trainer.Trainer`."""
from __future__ import annotations

from typing import Any, Dict, Protocol, Tuple, runtime_checkable

import torch

__all__ = ["Task"]


@runtime_checkable
class Task(Protocol):
    """What the Trainer needs from a task (classification, pose, segmentation, ...).

    Attributes:
        main_metric: key of the metric that selects ``best/`` (e.g. ``"val_acc"``); looked
            up in the epoch record, where evaluation metrics carry a ``val_`` prefix.
        higher_is_better: direction of ``main_metric`` (read with default ``True``).
    """

    main_metric: str
    higher_is_better: bool

    def forward(self, model: torch.nn.Module, batch: Any) -> Any:
        """Move ``batch`` to the model's device and return ``model(...)``'s output."""

    def loss(self, output: Any, batch: Any) -> Tuple[torch.Tensor, Dict[str, float]]:
        """``(scalar loss to minimise, {"acc": 0.5, ...})``; metrics are per-batch means."""

    def evaluate(self, model: torch.nn.Module, loader: Any) -> Dict[str, float]:
        """Full validation pass (model already in eval mode under ``torch.no_grad``).

        Keys get a ``val_`` prefix if missing.  Under DDP each rank evaluates its shard and the
        values are averaged, weighted by ``"num_samples"`` when the dict provides it.
        """
