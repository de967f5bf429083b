"""Train / evaluate video semantic segmentation (``svf train`` with ``run.task=segmentation``,
``svf eval``). Datasets: :mod:`.data`.
"""
from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any, Optional

import torch
from torch.utils.data import Dataset

from ...engine import build_dataloader, resolve_device
from ...engine.checkpoint import load_model_weights
from ...engine.config import TrainConfig
from ..common import build_backbone, load_trained, write_json
from ..fit import fit_task
from .data import build_segmentation_data
from .head import SegSpikeVideoFormer
from .task import SegmentationTask, unpack_seg_batch
from .visualize import save_segmentation_panel

__all__ = ["build_segmentation_model", "init_backbone", "train_segmentation", "evaluate_segmentation",
           "evaluate_segmentation_model", "vc_windows_for", "segmentation_energy", "save_prediction_panel"]


def build_segmentation_model(cfg: TrainConfig) -> SegSpikeVideoFormer:
    """Backbone (``model.*``, no classification head) + spike-driven decoder with
    ``model.num_classes`` segmentation classes."""
    if cfg.data.modality != "rgb":
        raise ValueError(f"segmentation supports data.modality=rgb only, got {cfg.data.modality!r}")
    if cfg.model.num_classes < 2:
        raise ValueError("model.num_classes (segmentation classes) must be >= 2")
    backbone = build_backbone(cfg.model, 3, 0)
    return SegSpikeVideoFormer(backbone, cfg.model.num_classes)


def vc_windows_for(cfg: TrainConfig) -> tuple[int, ...]:
    """mVC windows that can be scored during training for the configured data: clips of the
    synthetic set are T frames (windows ≤ T), VSPW videos are stitched (8 and 16), Cityscapes
    has one labelled frame per clip (none)."""
    if cfg.data.dataset == "cityscapes":
        return ()
    if cfg.data.dataset == "vspw":
        return (8, 16)
    fits = (lambda k: k < cfg.data.num_frames) if cfg.data.vc_definition == "vspw" else \
        (lambda k: k <= cfg.data.num_frames)  # VSPW's windows start at 0..T-k-1
    return tuple(k for k in (8, 16) if fits(k))


def init_backbone(model: SegSpikeVideoFormer, cfg: TrainConfig) -> Optional[str]:
    """``model.init`` pointing at backbone weights (ImageNet / classification checkpoints, keys
    without the ``backbone.`` prefix) is loaded into ``model.backbone`` here; a segmentation
    checkpoint (``backbone.*``/``head.*`` keys) is left to the Trainer. Returns the report."""
    if not cfg.model.init:
        return None
    report = load_model_weights(cfg.model.init, model.backbone)
    return str(report) if report.loaded else None


def train_segmentation(cfg: TrainConfig, progress: bool = True) -> dict[str, Any]:
    """Train (or resume) a segmentation model; writes checkpoints, metrics and curves to
    ``run.out_dir`` and returns the Trainer's final record (``val_miou``, ``val_mVC_8``, ...)."""
    from .spec import SPEC
    return fit_task(cfg, SPEC, progress)


def _finite_or_none(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def segmentation_energy(model: torch.nn.Module, clip: torch.Tensor) -> Optional[dict[str, float]]:
    """Energy per clip (mJ) and mean firing rate of ``model`` on ``clip [1, T, 3, H, W]``, with
    :func:`spikevideoformer.analysis.profile` (deployed network, 45 nm); None if unavailable."""
    try:
        from ...analysis import profile
    except ImportError:  # pragma: no cover - analysis is part of the package
        return None
    try:
        report = profile(model, clip)
    except Exception as exc:  # energy is a by-product of evaluation: never fail it
        warnings.warn(f"energy profile failed: {exc!r}")
        return None
    return {"energy_mj": float(report.total_energy_mj), "firing_rate": float(report.mean_firing_rate)}


def evaluate_segmentation_model(model: torch.nn.Module, dataset: Dataset, num_classes: int,
                                batch_size: int = 8, class_names=None, windows=(8, 16),
                                seed: int = 0, num_workers: int = 0,
                                vc_definition: str = "vspw") -> tuple[dict[str, Any], SegmentationTask]:
    """Evaluate ``model`` on ``dataset``: ``(metrics, task)`` with ``miou``, ``pixel_acc``,
    ``mean_acc``, ``loss``, ``mVC_k`` (None when no clip is long enough), ``per_class_iou``."""
    task = SegmentationTask(num_classes, vc_windows=windows, class_names=class_names,
                            vc_definition=vc_definition)
    loader = build_dataloader(dataset, batch_size, train=False, seed=seed, num_workers=num_workers)
    was_training = model.training
    model.eval()
    try:
        metrics = task.evaluate(model, loader)
    finally:
        model.train(was_training)
    out = {k: _finite_or_none(v) for k, v in metrics.items()}
    out["per_class_iou"] = task.per_class_iou()
    return out, task


def save_prediction_panel(model: torch.nn.Module, dataset: Dataset, path, class_names=None,
                          index: int = 0, title: Optional[str] = None) -> str:
    """PNG of one clip: frames / ground truth / prediction (first 6 frames)."""
    item = dataset[index]
    clip, masks, _ = unpack_seg_batch(item)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            pred = model(clip.unsqueeze(0).to(device)).argmax(2)[0].cpu()
    finally:
        model.train(was_training)
    return save_segmentation_panel(clip, masks, pred, path, class_names=class_names, title=title)


def evaluate_segmentation(checkpoint: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                          print_table: bool = False, energy: bool = True) -> dict[str, Any]:
    """Evaluate a trained checkpoint on its validation split.

    Writes ``eval_metrics.json`` (mIoU, pixel accuracy, per-class IoU, mVC_8/mVC_16 — null
    where no video is long enough —, loss, ``energy_mj`` per clip) and ``eval_panel.png``
    (frames / truth / prediction of the first validation clip) into ``out_dir`` (default: the
    checkpoint's run folder). ``print_table`` prints the per-class IoU table. Runs on the GPU
    when the run's ``run.device`` allows it and CUDA is available, else on the CPU.
    """
    model, cfg, ckpt_dir = load_trained(checkpoint, build_segmentation_model)
    if cfg.run.task != "segmentation":
        raise ValueError(f"checkpoint {ckpt_dir} was trained for run.task={cfg.run.task!r}")
    dev = cfg.run.device
    if dev.startswith("cuda") and not torch.cuda.is_available():
        dev = "cpu"  # trained on a GPU, evaluated here on the CPU
    device = resolve_device(dev)
    model = model.to(device)
    data = build_segmentation_data(cfg, splits=("val",))
    val, names = data["val"], data["class_names"]
    metrics, task = evaluate_segmentation_model(model, val, cfg.model.num_classes, data["val_batch_size"],
                                                names, (8, 16), cfg.run.seed, cfg.data.num_workers,
                                                cfg.data.vc_definition)
    out = Path(out_dir) if out_dir else ckpt_dir.parent
    result: dict[str, Any] = {"checkpoint": str(ckpt_dir), "dataset": cfg.data.dataset,
                              "model": cfg.model.name, "spike_max": cfg.model.spike_max,
                              "num_frames": cfg.data.num_frames, **metrics,
                              "parameters": sum(p.numel() for p in model.parameters()),
                              "head_parameters": sum(p.numel() for p in model.head.parameters())}
    if energy:
        clip = unpack_seg_batch(val[0])[0].unsqueeze(0)
        e = segmentation_energy(model, clip.to(device))
        if e is not None:
            result.update(e)
            result["energy_input_shape"] = list(clip.shape)
    panel = save_prediction_panel(model, val, out / "eval_panel.png", names,
                                  title=f"{cfg.model.name} on {cfg.data.dataset} (val clip 0)")
    result["panel_png"] = str(panel)
    write_json(out / "eval_metrics.json", result)
    if print_table:
        print(task.table())
        vc = "  ".join(f"mVC_{k} " + ("n/a" if result.get(f"mVC_{k}") is None else f"{100 * result[f'mVC_{k}']:.2f}")
                       for k in (8, 16))
        line = f"mIoU {100 * result['miou']:.2f}  pixel acc {100 * result['pixel_acc']:.2f}  {vc}"
        if "energy_mj" in result:
            line += f"  energy {result['energy_mj']:.3f} mJ/clip"
        print(line + f"  ({result['num_samples']} clips)")
        print(f"wrote {out / 'eval_metrics.json'} and {panel}")
    return result
