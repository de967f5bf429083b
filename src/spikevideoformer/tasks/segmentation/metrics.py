"""Segmentation metrics: confusion-matrix mIoU and VSPW video consistency (mVC_k)."""
from __future__ import annotations

import math
from typing import Dict, Iterable, Optional, Sequence

import numpy as np
import torch

__all__ = ["ConfusionMatrix", "video_consistency", "MeanVideoConsistency"]


def _as_long(x, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if x.is_floating_point() or x.is_complex():
        raise ValueError(f"{name} must hold integer class ids, got dtype {x.dtype}")
    return x.detach().to("cpu", torch.long)


class ConfusionMatrix:
    """Accumulates a ``[C, C]`` confusion matrix (rows = ground truth, cols = prediction).

    Pixels whose target equals ``ignore_index`` are skipped. ``merge`` adds another
    matrix (e.g. after gathering from other ranks); ``all_reduce`` does it in place
    via ``torch.distributed`` when a process group is initialised.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255):
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.matrix = torch.zeros(self.num_classes, self.num_classes, dtype=torch.long)

    def reset(self) -> None:
        self.matrix.zero_()

    def update(self, pred, target) -> None:
        """Add a batch: ``pred`` and ``target`` are integer tensors of identical shape ``[..., H, W]``."""
        pred = _as_long(pred, "pred")
        target = _as_long(target, "target")
        if pred.shape != target.shape:
            raise ValueError(f"pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
        valid = target != self.ignore_index
        t = target[valid]
        p = pred[valid]
        c = self.num_classes
        if t.numel() == 0:
            return
        if int(t.min()) < 0 or int(t.max()) >= c:
            bad = t[(t < 0) | (t >= c)][0].item()
            raise ValueError(f"target contains class id {bad} outside [0, {c}) (ignore_index={self.ignore_index})")
        if int(p.min()) < 0 or int(p.max()) >= c:
            bad = p[(p < 0) | (p >= c)][0].item()
            raise ValueError(f"pred contains class id {bad} outside [0, {c}) at a non-ignored pixel")
        self.matrix += torch.bincount(t * c + p, minlength=c * c).reshape(c, c)

    def merge(self, other: "ConfusionMatrix") -> "ConfusionMatrix":
        """Add ``other``'s counts into this matrix (returns self)."""
        if not isinstance(other, ConfusionMatrix):
            raise ValueError(f"can only merge a ConfusionMatrix, got {type(other).__name__}")
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge {other.num_classes}-class matrix into {self.num_classes}-class one")
        self.matrix += other.matrix.to(self.matrix.device)
        return self

    def all_reduce(self) -> None:
        """Sum the matrix over all ranks (no-op without an initialised process group)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            m = self.matrix.clone()
            if dist.get_backend() == "nccl":
                m = m.cuda()
            dist.all_reduce(m)
            self.matrix = m.cpu()

    def compute(self) -> Dict[str, object]:
        """Return ``miou``, ``per_class_iou`` (NaN where a class is absent from both
        prediction and truth), ``pixel_acc`` and ``mean_acc`` (over classes present in truth)."""
        m = self.matrix.double()
        tp = m.diag()
        gt = m.sum(1)
        pr = m.sum(0)
        union = gt + pr - tp
        nan = torch.full_like(tp, float("nan"))
        iou = torch.where(union > 0, tp / union.clamp(min=1), nan)
        acc = torch.where(gt > 0, tp / gt.clamp(min=1), nan)
        total = m.sum()
        return {
            "miou": _nanmean(iou),
            "per_class_iou": iou.tolist(),
            "pixel_acc": float(tp.sum() / total) if total > 0 else float("nan"),
            "mean_acc": _nanmean(acc),
        }

    def table(self, class_names: Optional[Sequence[str]] = None) -> str:
        """Printable per-class IoU table followed by the summary metrics."""
        if class_names is None:
            class_names = [str(i) for i in range(self.num_classes)]
        if len(class_names) != self.num_classes:
            raise ValueError(f"got {len(class_names)} class names for {self.num_classes} classes")
        res = self.compute()
        width = max(5, max(len(str(n)) for n in class_names))
        lines = [f"{'class':<{width}}  {'IoU':>7}", "-" * (width + 9)]
        for name, v in zip(class_names, res["per_class_iou"]):
            val = "    n/a" if math.isnan(v) else f"{100 * v:7.2f}"
            lines.append(f"{str(name):<{width}}  {val}")
        lines.append("-" * (width + 9))
        for key in ("miou", "pixel_acc", "mean_acc"):
            lines.append(f"{key:<{width}}  {100 * res[key]:7.2f}")
        return "\n".join(lines)


def _nanmean(x: torch.Tensor) -> float:
    ok = ~torch.isnan(x)
    return float(x[ok].mean()) if bool(ok.any()) else float("nan")


def video_consistency(preds, gts, window: int = 8, ignore_index: int = 255) -> float:
    """VSPW video consistency VC_k of one video (``preds``, ``gts``: ``[T, H, W]``).

    For every run of ``window`` consecutive frames, the consistent region is the set
    of pixels whose ground truth is identical in all frames (and not ``ignore_index``);
    VC is the fraction of it where the predictions are also identical in all frames.
    Returns the mean over windows (windows with an empty region are skipped) or NaN
    when the video has fewer than ``window`` frames or no consistent pixels at all.
    """
    preds = _as_long(preds, "preds")
    gts = _as_long(gts, "gts")
    if preds.shape != gts.shape or preds.dim() != 3:
        raise ValueError(f"preds and gts must both be [T, H, W]; got {tuple(preds.shape)} and {tuple(gts.shape)}")
    k = int(window)
    if k < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    t = preds.shape[0]
    if t < k:
        return float("nan")
    scores = []
    for s in range(t - k + 1):
        g = gts[s : s + k]
        p = preds[s : s + k]
        region = (g == g[0]).all(0) & (g[0] != ignore_index)
        n = int(region.sum())
        if n == 0:
            continue
        same = (p == p[0]).all(0) & region
        scores.append(int(same.sum()) / n)
    return float(np.mean(scores)) if scores else float("nan")


class MeanVideoConsistency:
    """Accumulates per-video VC_k and reports ``mVC_k`` (mean over videos) for each window."""

    def __init__(self, windows: Iterable[int] = (8, 16), ignore_index: int = 255):
        self.windows = tuple(int(w) for w in windows)
        if not self.windows or min(self.windows) < 1:
            raise ValueError(f"windows must be positive integers, got {windows}")
        self.ignore_index = int(ignore_index)
        self.scores: Dict[int, list] = {k: [] for k in self.windows}

    def reset(self) -> None:
        self.scores = {k: [] for k in self.windows}

    def update(self, preds, gts) -> Dict[int, float]:
        """Add one whole video (``[T, H, W]`` each); returns its VC per window (NaN = skipped)."""
        out = {}
        for k in self.windows:
            v = video_consistency(preds, gts, k, self.ignore_index)
            out[k] = v
            if not math.isnan(v):
                self.scores[k].append(v)
        return out

    def merge(self, other: "MeanVideoConsistency") -> "MeanVideoConsistency":
        if not isinstance(other, MeanVideoConsistency) or other.windows != self.windows:
            raise ValueError("can only merge a MeanVideoConsistency with the same windows")
        for k in self.windows:
            self.scores[k].extend(other.scores[k])
        return self

    def compute(self) -> Dict[str, float]:
        return {f"mVC_{k}": (float(np.mean(v)) if v else float("nan")) for k, v in self.scores.items()}
