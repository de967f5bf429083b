"""Train / evaluate / predict for video classification (``svf train|eval|predict``)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ...data.transforms import (
    center_crop, normalize, resize_short_side, sample_segment_indices, to_float_clip,
)
from ...data.video_io import read_video
from ...engine import build_dataloader
from ...engine.config import TrainConfig
from ..common import build_backbone, load_trained, write_json
from ..datasets import MODALITY_CHANNELS
from ..fit import fit_task
from .data import build_classification_data, to_modality
from .metrics import save_confusion_png
from .task import ClassificationTask

__all__ = ["build_classifier", "train_classification", "evaluate_classification", "predict_video",
           "print_eval_summary", "load_clip_for_model"]


def build_classifier(cfg: TrainConfig) -> torch.nn.Module:
    """The classification model a config describes."""
    return build_backbone(cfg.model, MODALITY_CHANNELS[cfg.data.modality], cfg.model.num_classes)


def train_classification(cfg: TrainConfig, progress: bool = True) -> dict[str, Any]:
    """Train (or resume) a classifier; writes checkpoints, metrics, curves and classes.json."""
    from .spec import SPEC
    return fit_task(cfg, SPEC, progress)


def _class_names(run_dir: Path, k: int) -> list[str]:
    for d in (run_dir, run_dir.parent):
        p = d / "classes.json"
        if p.is_file():
            names = json.loads(p.read_text(encoding="utf-8"))["classes"]
            if len(names) == k:
                return list(names)
    return [str(i) for i in range(k)]


def evaluate_classification(checkpoint: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                            overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate a trained checkpoint on its validation split (multi-view as configured).

    Writes ``eval_metrics.json`` and ``eval_confusion.png`` into ``out_dir`` (default: the
    checkpoint's run folder). ``overrides`` replace ``data`` keys (e.g. eval_clips=4).
    """
    model, cfg, ckpt_dir = load_trained(checkpoint, build_classifier)
    for k, v in (overrides or {}).items():
        if not hasattr(cfg.data, k):
            raise ValueError(f"unknown data key {k!r}")
        setattr(cfg.data, k, v)
    _, val_ds, classes, collate = build_classification_data(cfg.data, cfg.model.num_classes, cfg.run.seed)
    loader = build_dataloader(val_ds, cfg.data.batch_size, train=False, seed=cfg.run.seed,
                              num_workers=cfg.data.num_workers, collate_fn=collate)
    task = ClassificationTask(cfg.model.num_classes)
    metrics = task.evaluate(model, loader)
    out = Path(out_dir) if out_dir else ckpt_dir.parent
    result = {"checkpoint": str(ckpt_dir), "top1": metrics["acc"], "top5": metrics["top5"],
              "loss": metrics["loss"], "num_samples": metrics["num_samples"],
              "views": cfg.data.eval_clips * cfg.data.eval_crops, "classes": classes}
    write_json(out / "eval_metrics.json", result)
    save_confusion_png(task.last_confusion, classes, out / "eval_confusion.png")
    result["confusion_png"] = str(out / "eval_confusion.png")
    return result


def print_eval_summary(res: dict[str, Any]) -> None:
    """Print an :func:`evaluate_classification` result: top-1/top-5 line, then the JSON."""
    print(f"top-1 {100 * res['top1']:.2f}%  top-5 {100 * res['top5']:.2f}%  "
          f"({res['num_samples']} clips, {res['views']} view(s) each)")
    print(json.dumps({k: v for k, v in res.items() if k != "classes"}, indent=1))


def load_clip_for_model(path: str | os.PathLike, cfg: TrainConfig) -> torch.Tensor:
    """Decode a video file into the model input ``[1, T, C, S, S]`` the run was trained with."""
    frames = cfg.data.num_frames + (1 if cfg.data.modality == "event" else 0)
    video = read_video(path)  # uint8 [N, H, W, 3]
    idx = sample_segment_indices(video.shape[0], frames, train=False)
    clip = to_float_clip(video[torch.as_tensor(idx)])
    real = cfg.data.dataset != "moving_digits"
    short = round(cfg.data.size * 256 / 224) if real else cfg.data.size  # as VideoFolder's eval
    clip = center_crop(resize_short_side(clip, short), cfg.data.size)
    if real and cfg.data.modality == "rgb":
        clip = normalize(clip)
    return to_modality(clip, cfg.data.modality).unsqueeze(0)


@torch.no_grad()
def predict_video(path: str | os.PathLike, checkpoint: str | os.PathLike, topk: int = 5):
    """Top-k ``(class name, probability)`` for one video file."""
    model, cfg, ckpt_dir = load_trained(checkpoint, build_classifier)
    probs = model(load_clip_for_model(path, cfg)).softmax(1)[0]
    names = _class_names(ckpt_dir.parent, probs.shape[0])
    p, i = probs.topk(min(topk, probs.shape[0]))
    return [(names[j], float(q)) for q, j in zip(p.tolist(), i.tolist())]
