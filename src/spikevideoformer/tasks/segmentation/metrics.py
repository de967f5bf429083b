"""Segmentation metrics: confusion-matrix mIoU and video consistency (mVC_k; two definitions,
see :func:`window_consistency`)."""
from __future__ import annotations

import math
from typing import Dict, Iterable, Optional, Sequence

import numpy as np
import torch

__all__ = ["ConfusionMatrix", "window_consistency", "vc_contributions", "video_consistency",
           "MeanVideoConsistency",
           "VC_DEFINITIONS"]


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


VC_DEFINITIONS = ("vspw", "all_windows")


def _check_definition(definition: str) -> str:
    if definition not in VC_DEFINITIONS:
        raise ValueError(f"definition must be one of {VC_DEFINITIONS}, got {definition!r}")
    return definition


def window_consistency(preds, gts, window: int = 8, ignore_index: int = 255, *,
                       definition: str = "vspw") -> list:
    """Per-window VC scores of one video (``preds``, ``gts``: ``[T, H, W]``); NaN for a window
    whose consistent region is empty.

    A window is ``window`` consecutive frames; its *consistent region* is the set of pixels
    whose ground truth is the same in all of them, and its score is the fraction of that region
    where the prediction is also the same in all of them (correct or not).

    * ``"all_windows"`` (this package's earlier definition, for short clips): every full window,
      starts ``0 .. T-window``; pixels whose ground truth is ``ignore_index`` are not in the
      region.
    * ``"vspw"`` (default; the VSPW benchmark's reference script ``VC_perclip.py``): windows start at
      ``0 .. T-window-1`` (``range(T - window)``: the last full window is not used, and a video
      of ``T <= window`` frames has none); no label is special, so a pixel that is 255 in all
      frames of the window belongs to the region (``ignore_index`` is unused).
    """
    _check_definition(definition)
    preds = _as_long(preds, "preds")
    gts = _as_long(gts, "gts")
    if preds.shape != gts.shape or preds.dim() != 3:
        raise ValueError(f"preds and gts must both be [T, H, W]; got {tuple(preds.shape)} and {tuple(gts.shape)}")
    k = int(window)
    if k < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    t = preds.shape[0]
    starts = range(t - k) if definition == "vspw" else range(t - k + 1)
    scores = []
    for s in starts:
        g = gts[s : s + k]
        p = preds[s : s + k]
        region = (g == g[0]).all(0)
        if definition == "all_windows":
            region &= g[0] != ignore_index
        n = int(region.sum())
        same = int(((p == p[0]).all(0) & region).sum())
        scores.append(same / n if n else float("nan"))
    return scores


def _nan_free_mean(scores) -> float:
    ok = [s for s in scores if not math.isnan(s)]
    return float(np.mean(ok)) if ok else float("nan")


def vc_contributions(preds, gts, window: int, ignore_index: int = 255, *,
                     definition: str = "vspw") -> list:
    """What one video adds to the mVC_k mean: its window scores (``"vspw"``: pooled over videos)
    or its VC_k (``"all_windows"``: mean over videos); NaN scores are left out."""
    ws = window_consistency(preds, gts, window, ignore_index, definition=definition)
    if definition == "vspw":
        return [s for s in ws if not math.isnan(s)]
    v = _nan_free_mean(ws)
    return [] if math.isnan(v) else [v]


def video_consistency(preds, gts, window: int = 8, ignore_index: int = 255, *,
                      definition: str = "vspw") -> float:
    """Video consistency VC_k of one video (``preds``, ``gts``: ``[T, H, W]``, ``k = window``).

    The mean of :func:`window_consistency` over the video's windows, leaving out windows with an
    empty consistent region; NaN when the video has no window (``T <= k`` for ``"vspw"``,
    ``T < k`` for ``"all_windows"``) or no consistent pixel. See :class:`MeanVideoConsistency`
    for how videos are combined into mVC_k under each ``definition``.
    """
    return _nan_free_mean(window_consistency(preds, gts, window, ignore_index, definition=definition))


class MeanVideoConsistency:
    """Accumulates whole videos and reports ``mVC_k`` for each window length ``k``.

    ``definition="all_windows"`` averages each video's VC_k first and reports the mean over
    videos. ``definition="vspw"`` (default) follows the VSPW reference script ``VC_perclip.py``:
    the window scores of all videos are pooled and ``mVC_k`` is their mean (NaN windows left
    out), so a video weighs by its number of windows. Window ranges and ignore handling are
    those of :func:`window_consistency`. ``scores[k]`` holds the per-video scores
    (``"all_windows"``) or the pooled window scores (``"vspw"``).
    """

    def __init__(self, windows: Iterable[int] = (8, 16), ignore_index: int = 255,
                 definition: str = "vspw"):
        self.windows = tuple(int(w) for w in windows)
        if not self.windows or min(self.windows) < 1:
            raise ValueError(f"windows must be positive integers, got {windows}")
        self.ignore_index = int(ignore_index)
        self.definition = _check_definition(definition)
        self.scores: Dict[int, list] = {k: [] for k in self.windows}

    def reset(self) -> None:
        self.scores = {k: [] for k in self.windows}

    def update(self, preds, gts) -> Dict[int, float]:
        """Add one whole video (``[T, H, W]`` each); returns its VC per window (NaN = no score)."""
        out = {}
        for k in self.windows:
            out[k] = video_consistency(preds, gts, k, self.ignore_index, definition=self.definition)
            self.scores[k].extend(vc_contributions(preds, gts, k, self.ignore_index,
                                                   definition=self.definition))
        return out

    def merge(self, other: "MeanVideoConsistency") -> "MeanVideoConsistency":
        if (not isinstance(other, MeanVideoConsistency) or other.windows != self.windows
                or other.definition != self.definition):
            raise ValueError("can only merge a MeanVideoConsistency with the same windows and definition")
        for k in self.windows:
            self.scores[k].extend(other.scores[k])
        return self

    def compute(self) -> Dict[str, float]:
        return {f"mVC_{k}": (float(np.mean(v)) if v else float("nan")) for k, v in self.scores.items()}
