"""Video clip transforms (pure torch, no torchvision).

A clip is a float tensor ``[T, C, H, W]``; decoded videos are uint8
``[T, H, W, 3]`` and are converted with :func:`to_float_clip`.  Random
transforms take an optional ``numpy.random.Generator`` (``rng``).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "sample_segment_indices", "sample_multi_clip_indices",
    "to_float_clip", "resize_short_side", "random_crop", "center_crop", "three_crops",
    "random_horizontal_flip", "normalize",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
Size = Union[int, Tuple[int, int]]


def _pos_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _rng(rng: Optional[np.random.Generator]) -> np.random.Generator:
    if rng is None:
        return np.random.default_rng()
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator or None, got {type(rng).__name__}")
    return rng


def _check_clip(clip, name: str = "clip") -> torch.Tensor:
    if not isinstance(clip, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(clip).__name__}")
    if clip.dim() != 4:
        raise ValueError(f"{name} must be [T, C, H, W], got shape {tuple(clip.shape)}")
    return clip


def _pair(size: Size) -> Tuple[int, int]:
    if isinstance(size, (tuple, list)):
        if len(size) != 2:
            raise ValueError(f"size must be an int or (height, width), got {size!r}")
        return _pos_int("crop height", size[0]), _pos_int("crop width", size[1])
    s = _pos_int("size", size)
    return s, s


# --------------------------------------------------------------------------- sampling
def _segment_indices(num_total: int, num_frames: int, fractions: np.ndarray) -> List[int]:
    """Index at ``fractions[i]`` (in [0, 1)) of integer segment ``i``; segments split ``[0, num_total)``."""
    bounds = (np.arange(num_frames + 1) * num_total) // num_frames
    lo = bounds[:-1]
    length = np.maximum(bounds[1:] - lo, 1)  # empty segments (num_total < num_frames) repeat a frame
    idx = lo + np.floor(fractions * length).astype(np.int64)
    return np.minimum(idx, num_total - 1).tolist()


def sample_segment_indices(num_total: int, num_frames: int, train: bool = True,
                           rng: Optional[np.random.Generator] = None) -> List[int]:
    """TSN-style sampling: split ``[0, num_total)`` into ``num_frames`` equal segments.

    Picks one index per segment -- uniformly at random in train mode, the
    segment centre in eval mode.  Segments have integer bounds
    ``floor(i * num_total / num_frames)``, so indices are sorted, in range and
    distinct when ``num_total >= num_frames``; otherwise frames repeat.
    """
    num_total = _pos_int("num_total", num_total)
    num_frames = _pos_int("num_frames", num_frames)
    fractions = _rng(rng).random(num_frames) if train else np.full(num_frames, 0.5)
    return _segment_indices(num_total, num_frames, fractions)


def sample_multi_clip_indices(num_total: int, num_frames: int, num_clips: int) -> List[List[int]]:
    """``num_clips`` deterministic segment samplings for multi-view testing.

    Clip ``k`` takes, in every segment, the point at fraction ``(k + 0.5) / num_clips``
    so the clips are interleaved and together cover the video evenly.
    ``num_clips=1`` equals eval-mode :func:`sample_segment_indices`.
    """
    num_total = _pos_int("num_total", num_total)
    num_frames = _pos_int("num_frames", num_frames)
    num_clips = _pos_int("num_clips", num_clips)
    return [_segment_indices(num_total, num_frames, np.full(num_frames, (k + 0.5) / num_clips))
            for k in range(num_clips)]


# --------------------------------------------------------------------------- conversion
def to_float_clip(frames: torch.Tensor) -> torch.Tensor:
    """uint8 ``[T, H, W, 3]`` -> float32 ``[T, 3, H, W]`` in [0, 1]."""
    if not isinstance(frames, torch.Tensor):
        raise TypeError(f"frames must be a torch.Tensor, got {type(frames).__name__}")
    if frames.dtype != torch.uint8:
        raise TypeError(f"frames must be uint8, got dtype {frames.dtype}")
    if frames.dim() != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [T, H, W, 3], got shape {tuple(frames.shape)}")
    return frames.permute(0, 3, 1, 2).float().div_(255.0)


def normalize(clip: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN,
              std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """Per-channel ``(clip - mean) / std`` on a float ``[T, C, H, W]`` clip (ImageNet defaults)."""
    clip = _check_clip(clip)
    if not clip.is_floating_point():
        raise TypeError(f"clip must be floating point, got dtype {clip.dtype}")
    m = torch.as_tensor(mean, dtype=clip.dtype, device=clip.device).flatten()
    s = torch.as_tensor(std, dtype=clip.dtype, device=clip.device).flatten()
    if m.numel() != clip.shape[1] or s.numel() != clip.shape[1]:
        raise ValueError(f"mean/std need {clip.shape[1]} values (one per channel), got {m.numel()} and {s.numel()}")
    if bool((s <= 0).any()):
        raise ValueError(f"std values must be > 0, got {tuple(s.tolist())}")
    return (clip - m.view(1, -1, 1, 1)) / s.view(1, -1, 1, 1)


# --------------------------------------------------------------------------- spatial
def resize_short_side(clip: torch.Tensor, size: int) -> torch.Tensor:
    """Resize so that ``min(H, W) == size`` keeping the aspect ratio (bilinear, antialiased)."""
    clip = _check_clip(clip)
    size = _pos_int("size", size)
    if not clip.is_floating_point():
        raise TypeError(f"clip must be floating point (use to_float_clip), got dtype {clip.dtype}")
    h, w = clip.shape[-2:]
    if min(h, w) == size:
        return clip
    if h <= w:
        new_h, new_w = size, max(1, int(round(w * size / h)))
    else:
        new_h, new_w = max(1, int(round(h * size / w))), size
    return F.interpolate(clip, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True)


def _crop_check(clip: torch.Tensor, size: Size) -> Tuple[int, int]:
    clip = _check_clip(clip)
    ch, cw = _pair(size)
    h, w = clip.shape[-2:]
    if ch > h or cw > w:
        raise ValueError(f"crop size {ch}x{cw} is larger than the clip ({h}x{w}); resize first")
    return ch, cw


def random_crop(clip: torch.Tensor, size: Size, rng: Optional[np.random.Generator] = None) -> torch.Tensor:
    """Crop the same random ``size`` window from every frame."""
    ch, cw = _crop_check(clip, size)
    g = _rng(rng)
    top = int(g.integers(0, clip.shape[-2] - ch + 1))
    left = int(g.integers(0, clip.shape[-1] - cw + 1))
    return clip[..., top:top + ch, left:left + cw]


def center_crop(clip: torch.Tensor, size: Size) -> torch.Tensor:
    """Crop the central ``size`` window of every frame."""
    ch, cw = _crop_check(clip, size)
    top = (clip.shape[-2] - ch) // 2
    left = (clip.shape[-1] - cw) // 2
    return clip[..., top:top + ch, left:left + cw]


def three_crops(clip: torch.Tensor, size: Size) -> List[torch.Tensor]:
    """Three crops spread along the long side: left/centre/right (landscape) or top/centre/bottom."""
    ch, cw = _crop_check(clip, size)
    h, w = clip.shape[-2:]
    crops = []
    if w >= h:
        top = (h - ch) // 2
        for left in (0, (w - cw) // 2, w - cw):
            crops.append(clip[..., top:top + ch, left:left + cw])
    else:
        left = (w - cw) // 2
        for top in (0, (h - ch) // 2, h - ch):
            crops.append(clip[..., top:top + ch, left:left + cw])
    return crops


def random_horizontal_flip(clip: torch.Tensor, p: float = 0.5,
                           rng: Optional[np.random.Generator] = None) -> torch.Tensor:
    """Mirror all frames left-right with probability ``p``."""
    clip = _check_clip(clip)
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    if _rng(rng).random() < p:
        return clip.flip(-1)
    return clip
