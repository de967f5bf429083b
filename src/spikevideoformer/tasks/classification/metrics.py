"""Classification metrics: top-k accuracy, multi-view averaging, confusion matrix (+ PNG)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch

from ...atomic import save_figure

__all__ = ["topk_correct", "average_views", "confusion_matrix", "save_confusion_png"]


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, int]:
    """Number of samples whose label is among the top-k scores, for each k (k capped at K)."""
    if logits.dim() != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"logits must be [N, K] and labels [N], got {tuple(logits.shape)} and "
                         f"{tuple(labels.shape)}")
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices  # [N, kmax]
    hit = top == labels.view(-1, 1)
    return {k: int(hit[:, :min(k, kmax)].any(dim=1).sum()) for k in ks}


def average_views(logits: torch.Tensor, num_views: int) -> torch.Tensor:
    """Multi-view testing: ``[N·V, K]`` logits → ``[N, K]`` mean of per-view softmax scores
    (clips × crops averaged, as Kinetics papers report)."""
    if logits.shape[0] % num_views:
        raise ValueError(f"{logits.shape[0]} rows are not a multiple of num_views={num_views}")
    probs = logits.softmax(dim=1)
    return probs.view(-1, num_views, logits.shape[1]).mean(dim=1)


def confusion_matrix(pred: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[K, K]`` int64 counts, rows = true class, columns = predicted class."""
    idx = labels.long() * num_classes + pred.long()
    return torch.bincount(idx, minlength=num_classes * num_classes).view(num_classes, num_classes)


def save_confusion_png(cm: torch.Tensor, class_names: Sequence[str], path: str | os.PathLike,
                       title: str = "confusion matrix") -> Path:
    """Write a confusion-matrix heat map (row-normalised, with counts) atomically."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    k = cm.shape[0]
    norm = cm.double() / cm.sum(dim=1, keepdim=True).clamp(min=1)
    size = max(4.0, 0.45 * k + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm.numpy(), cmap="Blues", vmin=0, vmax=1)
    if k <= 30:
        names = list(class_names)
        ax.set_xticks(range(k), names, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(k), names, fontsize=8)
        for i in range(k):
            for j in range(k):
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    try:
        save_figure(fig, path, dpi=120)
    finally:
        plt.close(fig)
    return path
