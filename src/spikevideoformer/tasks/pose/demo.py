"""``svf demo --task pose``: train svf_tiny on the embedded synthetic pose task, then evaluate.

Trains with ``configs/pose_demo.yaml`` (+ overrides), prints the per-epoch table, evaluates the
best checkpoint like ``svf eval`` does and prints the model against the constant mean-pose
baselines (MPJPE, PA-MPJPE, PEL-MPJPE in mm), and writes a PNG of predicted vs true skeletons.
``quick`` is a smoke test (a few steps, < 1 min); ``modality="event"`` feeds ON/OFF polarity
frames; ``compare`` also trains the spatial-only model without temporal state.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Sequence

__all__ = ["run_pose_demo", "DEMO_SMOKE_OVERRIDES"]

# ``svf demo --task pose --quick``: a smoke-test budget (< 1 min)
DEMO_SMOKE_OVERRIDES = ["data.train_samples=32", "data.val_samples=16", "data.num_frames=4",
                        "data.batch_size=8", "optim.epochs=1", "optim.warmup_epochs=0"]


def _epoch_table(history: list[dict], title: str) -> None:
    print(f"\n{title}")
    print(f"{'epoch':>5} {'train_loss':>10} {'val_mpjpe':>9} {'val_pa_mpjpe':>12} {'val_pel_mpjpe':>13} "
          f"{'epoch_s':>8}")
    nan = float("nan")
    for r in history:
        print(f"{r['epoch']:>5} {r['train_loss']:>10.4f} {r.get('val_mpjpe', nan):>9.1f} "
              f"{r.get('val_pa_mpjpe', nan):>12.1f} {r.get('val_pel_mpjpe', nan):>13.1f} "
              f"{r.get('epoch_time_s', 0):>8.1f}")


def run_pose_demo(out: Optional[str] = None, modality: str = "rgb", quick: bool = False,
                  compare: bool = False, overrides: Sequence[str] = (), progress: bool = True) -> int:
    """Train on the ``pose_demo`` config (+ ``overrides``) into ``out``, then evaluate."""
    from ...engine.logger import read_jsonl
    from ...engine.named_configs import load_named_config
    from .runner import evaluate_pose, print_pose_table, train_pose

    modality = modality or "rgb"
    out = Path(out or ("runs/demo-pose" if modality == "rgb" else "runs/demo-pose-events"))
    extra = (DEMO_SMOKE_OVERRIDES if quick else []) + [f"data.modality={modality}"]
    cfg = load_named_config("pose_demo", list(overrides) + extra, out_dir=out)
    if cfg.run.task != "pose":
        raise ValueError(f"the pose demo needs run.task=pose, got {cfg.run.task!r}")

    t0 = time.perf_counter()
    result = train_pose(cfg, progress=progress)
    train_s = time.perf_counter() - t0
    history = read_jsonl(out / "metrics.jsonl")
    desc = (f"{cfg.model.name} ({cfg.model.attention}, {cfg.model.design}) on SyntheticPoseVideos "
            f"[{modality}], T={cfg.data.num_frames}, {cfg.data.size}x{cfg.data.size}")
    _epoch_table(history, desc)
    ev = evaluate_pose(out / "best", out)
    rows = {f"{cfg.model.name} (best, epoch {result['best_epoch']})": ev,
            "mean pose, camera frame": ev["baseline"], "mean pose, body frame": ev["baseline_body"]}
    print()
    print_pose_table(rows, f"validation, {ev['num_samples']} clips x {cfg.data.num_frames} frames "
                           f"(constant mean-pose baselines from the training set)")
    for key, name in (("mpjpe", "MPJPE"), ("pa_mpjpe", "PA-MPJPE"), ("pel_mpjpe", "PEL-MPJPE")):
        best = min(b[key] for b in (ev["baseline"], ev["baseline_body"]) if key in b)
        pct = 100 * (1 - ev[key] / best) if best else float("nan")
        print(f"{name:>9}: {ev[key]:6.1f} mm vs {best:6.1f} mm for the better mean pose "
              f"({abs(pct):.0f}% {'lower' if pct >= 0 else 'higher'})")
    total_s = time.perf_counter() - t0
    print(f"training {train_s / 60:.1f} min, total {total_s / 60:.1f} min; checkpoint {out / 'best'}, "
          f"curves {out / 'curves.png'}, skeletons {ev.get('skeleton_png', '-')}")

    if compare:
        cmp_out = out.parent / (out.name + "-spatial-nostate")
        cfg2 = load_named_config("pose_demo", list(overrides) + extra + [
            "model.design=spatial", "model.temporal_state=false"], out_dir=cmp_out)
        train_pose(cfg2, progress=progress)
        _epoch_table(read_jsonl(cmp_out / "metrics.jsonl"),
                     "spatial-only attention, membranes reset every frame (no temporal state)")
        ev2 = evaluate_pose(cmp_out / "best", cmp_out)
        print()
        print_pose_table({"joint SDHA": ev, "spatial / no state": ev2,
                          "mean pose, camera frame": ev["baseline"],
                          "mean pose, body frame": ev["baseline_body"]}, "validation (mm)")
    return 0
