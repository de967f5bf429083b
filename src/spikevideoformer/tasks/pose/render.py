"""Rendering helpers for the pose task.

* :func:`render_skeleton_frames` - fast numpy rasteriser for the synthetic
  task: thick anti-aliased limbs, orthographic camera looking along ``-z``
  (image right = ``+x``, image up = ``+y``), z-buffered and shaded by depth
  (closer = brighter), left limbs / right limbs / torso in different colours.
* :func:`plot_skeleton_sequence` - matplotlib (Agg) PNG of predicted vs true
  skeletons over time, written atomically.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from ...atomic import save_figure
from .skeleton import BONES, JOINT_NAMES, PARENTS

__all__ = ["render_skeleton_frames", "plot_skeleton_sequence", "BONE_GROUPS"]

_NECK = JOINT_NAMES.index("neck")
_HEAD = JOINT_NAMES.index("head")


def _group(child: int) -> int:
    name = JOINT_NAMES[child]
    if name.startswith("left_"):
        return 0
    if name.startswith("right_"):
        return 1
    return 2


#: 0 = left, 1 = right, 2 = centre, for each bone in :data:`BONES` plus the head segment
BONE_GROUPS = np.array([_group(c) for _, c in BONES] + [2], dtype=np.int64)
_RGB = np.array([[1.0, 0.35, 0.15], [0.15, 0.55, 1.0], [0.35, 1.0, 0.35]], dtype=np.float32)
_GREY = np.array([1.0, 0.5, 0.75], dtype=np.float32)
_BONE_P = np.array([p for p, _ in BONES], dtype=np.int64)
_BONE_C = np.array([c for _, c in BONES], dtype=np.int64)
# torso/head bones are drawn thicker than limbs
_BONE_W = np.array([1.0 if g != 2 else 1.4 for g in BONE_GROUPS], dtype=np.float32)
_BONE_W[-1] = 2.6  # head blob

def render_skeleton_frames(
    joints,
    size: int = 64,
    channels: int = 3,
    px_per_m: Optional[float] = None,
    center=(0.0, -0.12),
    radius: Optional[float] = None,
) -> np.ndarray:
    """Rasterise skeletons ``[T, 24, 3]`` (metres, camera frame) to ``[T, H, W, C]`` float32 in [0, 1].

    Orthographic projection along ``-z``: pixel column = ``size/2 + (x - cx) * px_per_m``,
    pixel row = ``size/2 - (y - cy) * px_per_m``; ``px_per_m`` defaults to
    ``size / 2.4`` (a 2.4 m tall field of view centred at ``y = cy``).  Depth
    ``z`` (towards the camera = larger) selects the visible limb per pixel
    (z-buffer) and modulates brightness (``clip(0.7 + 0.6 z, 0.3, 1)``).
    ``channels`` is 3 (RGB: left limbs orange, right limbs blue, torso/head
    green) or 1 (grey levels 1.0 / 0.5 / 0.75 for left / right / torso).

    Implementation: each limb is a capsule (segment + radius) with a 1-pixel
    linear anti-aliasing ramp, evaluated only inside its bounding box; the
    z-buffer and compositing use ``scatter_reduce(amax)``.
    """
    import torch

    j = np.asarray(joints, dtype=np.float32)
    if j.ndim != 3 or j.shape[1:] != (len(PARENTS), 3):
        raise ValueError(f"joints must be [T, 24, 3], got {j.shape}")
    if channels not in (1, 3):
        raise ValueError("channels must be 1 or 3")
    T = j.shape[0]
    size = int(size)
    scale = np.float32(size / 2.4 if px_per_m is None else px_per_m)
    r = max(1.0, size / 48.0) if radius is None else float(radius)
    # segments: 23 bones + a head segment extending neck->head upwards
    head_top = j[:, _HEAD] + np.float32(0.9) * (j[:, _HEAD] - j[:, _NECK])
    a3 = np.concatenate([j[:, _BONE_P], j[:, _HEAD][:, None]], axis=1)  # [T, S, 3]
    b3 = np.concatenate([j[:, _BONE_C], head_top[:, None]], axis=1)
    S = a3.shape[1]
    half = np.float32(size / 2.0)
    cx, cy = np.float32(center[0]), np.float32(center[1])
    ax = half + (a3[..., 0] - cx) * scale
    ay = half - (a3[..., 1] - cy) * scale
    bx = half + (b3[..., 0] - cx) * scale
    by = half - (b3[..., 1] - cy) * scale
    rr = (np.float32(r) * _BONE_W)[None, :]  # [1, S]
    # bounding-box windows (one common window size W for all segments)
    x0 = np.floor(np.minimum(ax, bx) - rr - 1.0)
    y0 = np.floor(np.minimum(ay, by) - rr - 1.0)
    wx = np.ceil(np.maximum(ax, bx) + rr + 1.0) - x0
    wy = np.ceil(np.maximum(ay, by) + rr + 1.0) - y0
    W = int(min(max(wx.max(), wy.max(), 1.0), size + 2 * (rr.max() + 2)))
    off = np.arange(W, dtype=np.float32)
    ix = np.broadcast_to(x0[..., None, None] + off[None, None, None, :], (T, S, W, W)).reshape(T, S, W * W)
    iy = np.broadcast_to(y0[..., None, None] + off[None, None, :, None], (T, S, W, W)).reshape(T, S, W * W)
    abx, aby = (bx - ax)[..., None], (by - ay)[..., None]
    dx = ix + np.float32(0.5) - ax[..., None]
    dy = iy + np.float32(0.5) - ay[..., None]
    den = np.maximum(abx * abx + aby * aby, np.float32(1e-6))
    t = np.clip((dx * abx + dy * aby) / den, 0.0, 1.0)
    ex = dx - t * abx
    ey = dy - t * aby
    cov = np.clip(rr[..., None] + np.float32(0.5) - np.sqrt(ex * ex + ey * ey), 0.0, 1.0)
    za = a3[..., 2:3]
    depth = za + t * (b3[..., 2:3] - za)
    inside = (ix >= 0) & (ix < size) & (iy >= 0) & (iy < size) & (cov > 0)
    HW = size * size
    dump = T * HW
    flat = np.where(inside, np.arange(T, dtype=np.int64)[:, None, None] * HW + (iy * size + ix).astype(np.int64), dump)
    flat_t = torch.from_numpy(flat.reshape(-1))
    solid = np.where(inside & (cov >= 0.5), depth, np.float32(-np.inf)).reshape(-1)
    # scatter_reduce on 1-D tensors runs single-threaded; element-wise work above is numpy
    # (buffers are allocated with numpy: torch.full/zeros fill in parallel, which is slow on busy machines)
    zbuf = torch.from_numpy(np.full(dump + 1, -np.inf, np.float32))
    zbuf.scatter_reduce_(0, flat_t, torch.from_numpy(solid), reduce="amax")
    zpix = zbuf.numpy()[flat]
    visible = inside & ((depth >= zpix - np.float32(1e-6)) | np.isneginf(zpix))
    val = np.where(visible, cov * np.clip(np.float32(0.7) + np.float32(0.6) * depth, 0.3, 1.0), np.float32(0.0))
    pal = _RGB if channels == 3 else _GREY[:, None]
    colour = pal[BONE_GROUPS]  # [S, C]
    out = torch.from_numpy(np.zeros((channels, dump + 1), np.float32))
    for c in range(channels):
        v = (val * colour[None, :, c, None]).reshape(-1)
        out[c].scatter_reduce_(0, flat_t, torch.from_numpy(v), reduce="amax")
    img = out.numpy()[:, :dump].reshape(channels, T, size, size).transpose(1, 2, 3, 0)
    return np.ascontiguousarray(img)


def _to_np(x):
    if x is None:
        return None
    try:
        import torch

        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    return np.asarray(x, dtype=np.float64)


def plot_skeleton_sequence(
    pred_joints,
    true_joints,
    path: str,
    max_frames: int = 8,
    title: Optional[str] = None,
    labels: Sequence[str] = ("pred", "true"),
) -> str:
    """Write a PNG comparing predicted and true skeletons ``[T, 24, 3]`` over time.

    Top row: front view (x right, y up); bottom row: side view (z right, y up),
    one column per frame (at most ``max_frames``, evenly sub-sampled).  True
    skeleton in black, prediction in red (``pred_joints`` may be None).  The
    file is written to a temporary file in the same folder and then moved into
    place with ``os.replace``.  Returns ``path``.
    """
    from matplotlib.figure import Figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    pred = _to_np(pred_joints)
    true = _to_np(true_joints)
    if true is None:
        raise ValueError("true_joints is required")
    if true.ndim == 2:
        true = true[None]
        pred = None if pred is None else pred[None]
    T = true.shape[0]
    if pred is not None and pred.shape != true.shape:
        raise ValueError(f"pred {pred.shape} and true {true.shape} differ")
    n = max(1, min(int(max_frames), T))
    frames = np.unique(np.linspace(0, T - 1, n).round().astype(int))
    allj = true if pred is None else np.concatenate([true, pred])
    lo = allj.reshape(-1, 3).min(0)
    hi = allj.reshape(-1, 3).max(0)
    mid = (lo + hi) / 2
    span = max(float((hi - lo).max()) / 2 * 1.1, 0.1)

    fig = Figure(figsize=(1.8 * len(frames), 3.8), dpi=80)
    FigureCanvasAgg(fig)
    for col, f in enumerate(frames):
        for row, (hx, name) in enumerate(((0, "front"), (2, "side"))):
            ax = fig.add_subplot(2, len(frames), row * len(frames) + col + 1)
            for pts, colour, lab in ((true, "k", labels[1]), (pred, "tab:red", labels[0])):
                if pts is None:
                    continue
                p = pts[f]
                for k, (a, b) in enumerate(BONES):
                    ax.plot([p[a, hx], p[b, hx]], [p[a, 1], p[b, 1]], color=colour, lw=1.5,
                            label=lab if (k == 0 and col == 0 and row == 0) else None)
            ax.set_xlim(mid[hx] - span, mid[hx] + span)
            ax.set_ylim(mid[1] - span, mid[1] + span)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"t={f}", fontsize=8)
            if col == 0:
                ax.set_ylabel(name, fontsize=8)
    if pred is not None:
        fig.legend(loc="lower center", ncol=2, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.05 if pred is not None else 0, 1, 1))

    path = os.fspath(path)
    save_figure(fig, path, format="png")
    return path
