"""Segmentation visualisation: frames / ground truth / prediction PNG panels."""
from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np
import torch

from ...atomic import save_figure

__all__ = ["PALETTE", "colorize", "save_segmentation_panel"]


def _make_palette() -> np.ndarray:
    """Fixed 256-entry palette: 19 Cityscapes colours, then bit-interleaved colours; 255 = white."""
    cs = [(128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
          (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
          (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32)]
    pal = np.zeros((256, 3), dtype=np.uint8)
    pal[: len(cs)] = cs
    for i in range(len(cs), 256):
        c, r, g, b = i, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        pal[i] = (r, g, b)
    pal[255] = (255, 255, 255)
    return pal


PALETTE = _make_palette()


def colorize(labels, palette: np.ndarray = PALETTE) -> np.ndarray:
    """Integer label map ``[..., H, W]`` -> uint8 RGB ``[..., H, W, 3]`` (values taken mod 256)."""
    a = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    return palette[a.astype(np.int64) % 256]


def _frames_to_rgb(frames) -> np.ndarray:
    f = frames.detach().cpu().float() if isinstance(frames, torch.Tensor) else torch.as_tensor(frames).float()
    if f.dim() != 4 or f.shape[1] != 3:
        raise ValueError(f"frames must be [T, 3, H, W], got {tuple(f.shape)}")
    if f.min() < 0 or f.max() > 1:  # assume ImageNet-normalised input
        from .transforms import denormalize
        f = denormalize(f)
    return f.clamp(0, 1).permute(0, 2, 3, 1).numpy()


def save_segmentation_panel(frames, gt, pred, path, max_frames: int = 6, class_names: Optional[Sequence[str]] = None,
                            title: Optional[str] = None) -> str:
    """Write a PNG grid (rows: frames, truth, prediction; ``gt``/``pred`` may be None) atomically.

    ``frames`` is ``[T, 3, H, W]`` in [0, 1] (ImageNet-normalised input is detected and undone),
    ``gt``/``pred`` are ``[T, H, W]`` label maps. Returns the written path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    rgb = _frames_to_rgb(frames)
    rows = [("frames", rgb)]
    for name, lab in (("truth", gt), ("prediction", pred)):
        if lab is not None:
            lab = lab.detach().cpu().numpy() if isinstance(lab, torch.Tensor) else np.asarray(lab)
            if lab.shape != rgb.shape[:3]:
                raise ValueError(f"{name} shape {lab.shape} does not match frames {rgb.shape[:3]}")
            rows.append((name, colorize(lab)))
    t = min(rgb.shape[0], max(1, int(max_frames)))
    h, w = rgb.shape[1:3]
    cell = 2.2
    fig = Figure(figsize=(cell * t * w / max(h, w) + 0.6, cell * len(rows) * h / max(h, w) + 0.6), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), t, squeeze=False)
    for r, (name, imgs) in enumerate(rows):
        for c in range(t):
            ax = axes[r][c]
            ax.imshow(imgs[c], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name)
            if r == 0:
                ax.set_title(f"t={c}", fontsize=8)
    if class_names:
        handles = [Patch(color=PALETTE[i] / 255.0, label=n) for i, n in enumerate(class_names)]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    path = os.fspath(path)
    save_figure(fig, path, format="png", bbox_inches="tight")
    return path
