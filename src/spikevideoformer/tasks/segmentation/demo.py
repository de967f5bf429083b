"""``svf demo --task segmentation``: train svf_tiny + the spike-driven decoder on the embedded
SyntheticSegVideos task, then score the best checkpoint on a held-out split.

Prints the per-epoch table, the held-out mIoU / pixel accuracy / mVC_8 next to the
majority-class baseline and the per-class IoU table, and writes ``prediction_panel.png``
(frames / truth / prediction of a held-out clip) and ``demo_metrics.json`` into the output
folder (default ``runs/demo-seg``). ``quick`` is a smoke test (< 1 min); ``compare`` also
trains the spatial-only model without temporal state and the ANN counterpart (ReLU neurons,
softmax attention) on the same budget and prints their held-out mIoU beside the spiking one.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Optional, Sequence

__all__ = ["run_segmentation_demo", "DEMO_SMOKE_OVERRIDES", "print_seg_table"]

# ``svf demo --task segmentation --quick``: a smoke-test budget (< 1 min)
DEMO_SMOKE_OVERRIDES = ["data.train_samples=16", "data.val_samples=8", "optim.epochs=1",
                        "data.batch_size=8", "data.size=32"]
HELD_OUT_SAMPLES = 128
ANN_OVERRIDES = ("model.neuron=relu", "model.attention=softmax")  # the ANN counterpart


def _fmt(v: Any, pct: bool = True) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{100 * v:.1f}" if pct else f"{v:.4f}"


def print_seg_table(history: list[dict], title: str) -> None:
    print(f"\n{title}")
    print(f"{'epoch':>5} {'train_loss':>10} {'train_acc':>9} {'val_mIoU':>8} {'val_mVC8':>8} {'epoch_s':>8}")
    for r in history:
        print(f"{r['epoch']:>5} {r['train_loss']:>10.4f} {r.get('train_acc', float('nan')):>9.3f} "
              f"{r.get('val_miou', float('nan')):>8.3f} {r.get('val_mVC_8', float('nan')):>8.3f} "
              f"{r.get('epoch_time_s', 0):>8.1f}")


def _held_out(run_dir: Path, cfg, windows=(8, 16)):
    """Best checkpoint of ``run_dir`` scored on the ``test`` split (never seen in training or
    checkpoint selection); returns ``(metrics, task, model, dataset)``."""
    from ..common import load_trained
    from .runner import build_segmentation_model, evaluate_segmentation_model
    from .synthetic import SyntheticSegVideos

    model, _, _ = load_trained(run_dir / "best", build_segmentation_model)
    n = min(HELD_OUT_SAMPLES, cfg.data.val_samples or HELD_OUT_SAMPLES)
    ds = SyntheticSegVideos("test", n, cfg.data.num_frames, cfg.data.size, cfg.model.num_classes, cfg.run.seed)
    metrics, task = evaluate_segmentation_model(model, ds, cfg.model.num_classes, cfg.data.batch_size,
                                                list(ds.class_names), windows, cfg.run.seed,
                                                vc_definition=cfg.data.vc_definition)
    return metrics, task, model, ds


def run_segmentation_demo(out: Optional[str] = None, modality: str = "rgb", quick: bool = False,
                          compare: bool = False, overrides: Sequence[str] = (),
                          progress: bool = True) -> int:
    """Train on the ``seg_demo`` config (+ ``overrides``) into ``out``, then score a held-out split."""
    from ...engine.logger import read_jsonl
    from ...engine.named_configs import load_named_config
    from ..common import write_json
    from .runner import save_prediction_panel, train_segmentation
    from .synthetic import majority_class_baseline

    if modality not in (None, "rgb"):
        print(f"svf demo --task segmentation supports --modality rgb only, got {modality!r}")
        return 2
    out = Path(out or "runs/demo-seg")
    extra = list(DEMO_SMOKE_OVERRIDES) if quick else []
    cfg = load_named_config("seg_demo", list(overrides) + extra, out_dir=out)
    if cfg.run.task != "segmentation" or cfg.data.dataset != "synthetic_seg":
        print("the segmentation demo needs run.task=segmentation and data.dataset=synthetic_seg")
        return 2
    t0 = time.perf_counter()
    result = train_segmentation(cfg, progress=progress)
    train_min = (time.perf_counter() - t0) / 60
    print_seg_table(read_jsonl(out / "metrics.jsonl"),
                    f"{cfg.model.name} + spike-driven decoder ({cfg.model.attention}, {cfg.model.design}, "
                    f"D={cfg.model.spike_max}) on SyntheticSegVideos, T={cfg.data.num_frames}, "
                    f"{cfg.data.size}x{cfg.data.size}, {cfg.model.num_classes} classes")
    print(f"best val_mIoU {result['best_metric']:.3f} (epoch {result['best_epoch']}), "
          f"training {train_min:.1f} min; checkpoint {out / 'best'}, curves {out / 'curves.png'}")

    metrics, task, model, test = _held_out(out, cfg)
    baseline = majority_class_baseline(test)
    print(f"\nheld-out split ({len(test)} clips of {cfg.data.num_frames} frames, best checkpoint):")
    print(task.table())
    print(f"mIoU {_fmt(metrics['miou'])}  (majority-class baseline {_fmt(baseline)})   "
          f"pixel acc {_fmt(metrics['pixel_acc'])}   mVC_8 {_fmt(metrics.get('mVC_8'))}   "
          f"mVC_16 {_fmt(metrics.get('mVC_16'))}" + ("" if cfg.data.num_frames >= 16 else " (clips < 16 frames)"))
    panel = save_prediction_panel(model, test, out / "prediction_panel.png", list(test.class_names), index=1,
                                  title=f"held-out clip: mIoU {_fmt(metrics['miou'])} on the split")
    summary = {"held_out": {k: v for k, v in metrics.items()}, "majority_baseline_miou": baseline,
               "best_val_miou": result["best_metric"], "best_epoch": result["best_epoch"],
               "train_minutes": train_min, "panel_png": str(panel)}
    if compare:
        cmp_out = out.parent / (out.name + "-spatial-nostate")
        cfg2 = load_named_config("seg_demo", list(overrides) + extra + [
            "model.design=spatial", "model.temporal_state=false"], out_dir=cmp_out)
        train_segmentation(cfg2, progress=progress)
        m2, _, _, _ = _held_out(cmp_out, cfg2)
        print(f"\nspatial-only attention, membranes reset every frame: mIoU {_fmt(m2['miou'])}  "
              f"mVC_8 {_fmt(m2.get('mVC_8'))}  vs joint SDHA mIoU {_fmt(metrics['miou'])}  "
              f"mVC_8 {_fmt(metrics.get('mVC_8'))}")
        summary["spatial_nostate"] = m2
        ann_out = out.parent / (out.name + "-ann")
        cfg3 = load_named_config("seg_demo", list(overrides) + extra + list(ANN_OVERRIDES), out_dir=ann_out)
        train_segmentation(cfg3, progress=progress)
        m3, _, _, _ = _held_out(ann_out, cfg3)
        print(f"ANN counterpart (ReLU, softmax attention; same data, recipe, budget): mIoU "
              f"{_fmt(m3['miou'])}  vs spiking mIoU {_fmt(metrics['miou'])}")
        summary["ann"] = m3
    write_json(out / "demo_metrics.json", summary)
    print(f"total {(time.perf_counter() - t0) / 60:.1f} min; wrote {panel} and {out / 'demo_metrics.json'}")
    return 0
