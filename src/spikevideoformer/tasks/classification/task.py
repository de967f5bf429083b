"""The classification task object the engine's Trainer drives (forward, loss, evaluate)."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .metrics import average_views, confusion_matrix, topk_correct

__all__ = ["ClassificationTask", "unpack_batch"]


def unpack_batch(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(clips, labels)`` from a ``(clips, labels)`` tuple or a ``VideoBatch``."""
    if batch is None:
        raise ValueError("empty batch (every clip unreadable): skip it, do not train on it")
    clips, labels = batch[0], batch[1]
    return clips, labels


class ClassificationTask:
    """Cross-entropy with label smoothing; top-1/top-5 with multi-view averaging in evaluation.

    Evaluation clips may be ``[B, T, C, H, W]`` (one view) or ``[B, V, T, C, H, W]`` (V views:
    temporal clips × spatial crops); view scores are averaged after softmax.

    ``per_step_loss``: in training, the loss is the mean over the T frames of the cross-entropy
    of each frame's logits (temporal efficient training, Deng et al. 2022; docs/design.md §7.4)
    instead of the cross-entropy of their mean. The model's output (mean over T), evaluation and
    prediction are unchanged; training accuracy is that of the mean logits.
    """

    main_metric = "val_acc"
    higher_is_better = True

    def __init__(self, num_classes: int, label_smoothing: float = 0.1, per_step_loss: bool = False) -> None:
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.per_step_loss = per_step_loss
        self.last_confusion: torch.Tensor | None = None

    @staticmethod
    def _device(model: torch.nn.Module) -> torch.device:
        return next(model.parameters()).device

    def forward(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        # an all-unreadable (None) batch never gets here: the Trainer skips and counts it
        clips, _ = unpack_batch(batch)
        clips = clips.to(self._device(model), non_blocking=True)
        if self.per_step_loss and model.training:
            return model(clips, per_step=True)  # [B, T, K]
        return model(clips)

    def loss(self, output: torch.Tensor, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        labels = unpack_batch(batch)[1].to(output.device)
        logits, targets = output, labels
        if output.dim() == 3:  # per-frame logits [B, T, K]: mean of the per-frame losses
            logits, targets = output.flatten(0, 1), labels.repeat_interleave(output.shape[1])
            output = output.mean(1)
        loss = F.cross_entropy(logits.float(), targets, label_smoothing=self.label_smoothing)
        acc = (output.argmax(1) == labels).float().mean().item()
        return loss, {"acc": acc}

    @torch.no_grad()
    def predict_scores(self, model: torch.nn.Module, clips: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``[B, K]`` for one-view ``[B, T, ...]`` or multi-view ``[B, V, T, ...]``."""
        clips = clips.to(self._device(model))
        if clips.dim() == 6:
            b, v = clips.shape[:2]
            return average_views(model(clips.flatten(0, 1)).float(), v)
        return model(clips).float().softmax(1)

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, loader: Any) -> dict[str, float]:
        n = correct1 = correct5 = 0
        loss_sum = 0.0
        cm = torch.zeros(self.num_classes, self.num_classes, dtype=torch.long)
        for batch in loader:
            if batch is None:
                continue
            clips, labels = unpack_batch(batch)
            probs = self.predict_scores(model, clips).cpu()
            hits = topk_correct(probs, labels, (1, 5))
            correct1, correct5 = correct1 + hits[1], correct5 + hits[5]
            loss_sum += float(F.nll_loss(probs.clamp_min(1e-12).log(), labels, reduction="sum"))
            cm += confusion_matrix(probs.argmax(1), labels, self.num_classes)
            n += labels.shape[0]
        self.last_confusion = cm
        if n == 0:
            raise ValueError("validation loader produced no readable clips")
        return {"acc": correct1 / n, "top5": correct5 / n, "loss": loss_sum / n, "num_samples": n}
