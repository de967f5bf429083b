"""The segmentation task object the engine's Trainer drives (forward, loss, evaluate).

Batches are ``(clips [B, T, 3, H, W], masks [B, T, H, W])`` or, for whole-video evaluation,
``(clips, masks, meta)`` with ``meta = {"video": [names], "frames": [B, T], "new": [B, T]}``
(``VSPWDataset(..., return_meta=True)``). Masks hold class ids, 255 = ignore.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from ...engine.distributed import all_reduce_sum
from .datasets import IGNORE_INDEX
from .metrics import VC_DEFINITIONS, ConfusionMatrix, vc_contributions

__all__ = ["SegmentationTask", "segmentation_loss", "unpack_seg_batch"]


def unpack_seg_batch(batch: Any) -> Tuple[torch.Tensor, torch.Tensor, Optional[dict]]:
    """``(clips, masks, meta or None)`` from a ``(clips, masks[, meta])`` batch."""
    if batch is None:
        raise ValueError("empty batch")
    if isinstance(batch, dict):
        return batch["clips"], batch["masks"], batch.get("meta")
    meta = batch[2] if len(batch) > 2 and isinstance(batch[2], dict) else None
    return batch[0], batch[1], meta


def segmentation_loss(logits: torch.Tensor, masks: torch.Tensor,
                      ignore_index: int = IGNORE_INDEX) -> Tuple[torch.Tensor, int]:
    """Per-pixel cross-entropy over all frames, mean over non-ignored pixels.

    ``logits [B, T, K, H, W]``, ``masks [B, T, H, W]``. Returns ``(loss, valid pixel count)``;
    a batch without any labelled pixel gives a zero loss that still has a graph (instead of
    the NaN of ``F.cross_entropy``'s mean over nothing).
    """
    if logits.dim() != 5 or masks.shape != logits.shape[:2] + logits.shape[3:]:
        raise ValueError(f"logits must be [B, T, K, H, W] and masks [B, T, H, W], got "
                         f"{tuple(logits.shape)} and {tuple(masks.shape)}")
    target = masks.long().flatten(0, 1)
    total = F.cross_entropy(logits.float().flatten(0, 1), target, ignore_index=ignore_index,
                            reduction="sum")
    n = int((target != ignore_index).sum())
    return total / max(n, 1), n


class _VideoStitcher:
    """Collects per-frame predictions of whole videos from consecutive evaluation windows.

    Only frames flagged ``new`` are kept (each frame once). A video is scored when the loader
    moves on to another one (validation loaders are sequential); frames are ordered by index
    and split into contiguous runs (under DDP a process sees only part of a video's windows),
    each run scored as one video.
    """

    def __init__(self, windows: Sequence[int], ignore_index: int, definition: str = "vspw") -> None:
        self.windows, self.ignore_index, self.definition = tuple(windows), ignore_index, definition
        self.current: Optional[str] = None
        self.frames: Dict[int, Tuple[torch.Tensor, torch.Tensor]] = {}
        self.scores: Dict[int, List[float]] = {k: [] for k in self.windows}

    @staticmethod
    def _compact(x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.uint8) if int(x.max()) < 256 and int(x.min()) >= 0 else x

    def add(self, name: str, idx: Sequence[int], new: Sequence[bool], pred: torch.Tensor,
            gt: torch.Tensor) -> None:
        if name != self.current:
            self.flush()
            self.current = name
        for t, (i, is_new) in enumerate(zip(idx, new)):
            if is_new and int(i) not in self.frames:
                self.frames[int(i)] = (self._compact(pred[t]), self._compact(gt[t]))

    def flush(self) -> None:
        if not self.frames:
            self.current = None
            return
        order = sorted(self.frames)
        runs, run = [], [order[0]]
        for i in order[1:]:
            if i == run[-1] + 1:
                run.append(i)
            else:
                runs.append(run)
                run = [i]
        runs.append(run)
        for r in runs:
            p = torch.stack([self.frames[i][0] for i in r]).long()
            g = torch.stack([self.frames[i][1] for i in r]).long()
            for k in self.windows:
                self.scores[k].extend(vc_contributions(p, g, k, self.ignore_index,
                                                       definition=self.definition))
        self.frames, self.current = {}, None


class SegmentationTask:
    """Per-pixel cross-entropy (ignore 255) over all frames; mIoU, pixel accuracy and mVC.

    Args:
        num_classes: K.
        ignore_index: label excluded from loss and metrics (255).
        vc_windows: window lengths ``k`` of the video-consistency metrics ``mVC_k``. Clips are
            scored as short videos (a window longer than the clip has no score); batches that
            carry ``meta`` with video names are stitched into whole videos first (VSPW).
            Keys whose windows never fit are reported as NaN.
        vc_definition: ``"vspw"`` (the VSPW reference script: windows start at ``0..T-k-1``,
            window scores pooled over videos) or ``"all_windows"`` (every full window, 255
            excluded, mean of per-video VC); see ``metrics.window_consistency``.
        class_names: for :meth:`table`.

    ``evaluate`` returns ``miou``, ``pixel_acc``, ``mean_acc``, ``loss``, ``mVC_k`` for every
    window, and ``num_samples``; the confusion matrix and the VC sums are all-reduced under
    DDP, so every process reports the global values. ``last_confusion`` keeps the last matrix.
    """

    main_metric = "val_miou"
    higher_is_better = True

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX,
                 vc_windows: Iterable[int] = (8, 16), class_names: Optional[Sequence[str]] = None,
                 vc_definition: str = "vspw") -> None:
        if int(num_classes) < 2:
            raise ValueError(f"segmentation needs num_classes >= 2, got {num_classes}")
        self.num_classes, self.ignore_index = int(num_classes), int(ignore_index)
        self.vc_windows = tuple(int(k) for k in vc_windows)
        if any(k < 1 for k in self.vc_windows):
            raise ValueError(f"vc_windows must be positive, got {self.vc_windows}")
        self.class_names = list(class_names) if class_names is not None else None
        if vc_definition not in VC_DEFINITIONS:
            raise ValueError(f"vc_definition must be one of {VC_DEFINITIONS}, got {vc_definition!r}")
        self.vc_definition = vc_definition
        self.last_confusion: Optional[ConfusionMatrix] = None

    @staticmethod
    def _device(model: torch.nn.Module) -> torch.device:
        return next(model.parameters()).device

    def forward(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        # an all-unreadable (None) batch never gets here: the Trainer skips and counts it
        clips = unpack_seg_batch(batch)[0]
        return model(clips.to(self._device(model), non_blocking=True))

    def loss(self, output: torch.Tensor, batch: Any) -> Tuple[torch.Tensor, Dict[str, float]]:
        masks = unpack_seg_batch(batch)[1].to(output.device)
        loss, n = segmentation_loss(output, masks, self.ignore_index)
        with torch.no_grad():
            valid = masks != self.ignore_index
            acc = float((output.argmax(2) == masks)[valid].sum()) / max(n, 1)
        return loss, {"acc": acc}

    @torch.no_grad()
    def predict(self, model: torch.nn.Module, clips: torch.Tensor) -> torch.Tensor:
        """Per-frame class ids ``[B, T, H, W]`` for clips ``[B, T, 3, H, W]``."""
        return model(clips.to(self._device(model))).argmax(2)

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, loader: Any) -> Dict[str, float]:
        device = self._device(model)
        cm = ConfusionMatrix(self.num_classes, self.ignore_index)
        stitcher = _VideoStitcher(self.vc_windows, self.ignore_index, self.vc_definition)
        clip_scores: Dict[int, List[float]] = {k: [] for k in self.vc_windows}
        loss_sum, pixels, n = 0.0, 0, 0
        for batch in loader:
            if batch is None:
                continue
            clips, masks, meta = unpack_seg_batch(batch)
            logits = model(clips.to(device, non_blocking=True))
            masks_d = masks.to(device)
            loss, npx = segmentation_loss(logits, masks_d, self.ignore_index)
            loss_sum += float(loss) * npx
            pixels += npx
            pred = logits.argmax(2).cpu()
            masks = masks.cpu()
            cm.update(pred, masks)
            n += int(clips.shape[0])
            if not self.vc_windows:
                continue
            if meta is not None and "video" in meta:
                frames, new = meta["frames"], meta.get("new")
                for b, name in enumerate(meta["video"]):
                    flags = new[b].tolist() if new is not None else [True] * pred.shape[1]
                    stitcher.add(str(name), frames[b].tolist(), flags, pred[b], masks[b])
            else:  # every clip is a short video
                for b in range(pred.shape[0]):
                    for k in self.vc_windows:
                        clip_scores[k].extend(vc_contributions(pred[b], masks[b], k, self.ignore_index,
                                                               definition=self.vc_definition))
        stitcher.flush()
        if n == 0:
            raise ValueError("validation loader produced no clips")
        cm.all_reduce()
        self.last_confusion = cm
        res = cm.compute()
        # loss and VC means over all processes (sums and counts all-reduced)
        stats = [loss_sum, float(pixels)]
        for k in self.vc_windows:
            s = clip_scores[k] + stitcher.scores[k]
            stats += [float(sum(s)), float(len(s))]
        vec = all_reduce_sum(torch.tensor(stats, dtype=torch.float64, device=device)).cpu().tolist()
        out: Dict[str, float] = {"miou": res["miou"], "pixel_acc": res["pixel_acc"],
                                 "mean_acc": res["mean_acc"], "loss": vec[0] / max(vec[1], 1.0)}
        for i, k in enumerate(self.vc_windows):
            total, count = vec[2 + 2 * i], vec[3 + 2 * i]
            out[f"mVC_{k}"] = total / count if count else float("nan")
        out["num_samples"] = n
        return out

    def per_class_iou(self) -> Dict[str, Optional[float]]:
        """``{class name: IoU or None (absent from truth and prediction)}`` of the last evaluation."""
        if self.last_confusion is None:
            raise RuntimeError("call evaluate() first")
        names = self.class_names or [str(i) for i in range(self.num_classes)]
        iou = self.last_confusion.compute()["per_class_iou"]
        return {str(nm): (None if math.isnan(v) else float(v)) for nm, v in zip(names, iou)}

    def table(self) -> str:
        """Per-class IoU table of the last evaluation."""
        if self.last_confusion is None:
            raise RuntimeError("call evaluate() first")
        return self.last_confusion.table(self.class_names)
