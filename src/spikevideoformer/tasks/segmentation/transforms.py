"""Joint clip/mask spatial transforms (torch only).

Every function takes ``clip`` float ``[T, 3, H, W]`` and ``masks`` int64 ``[T, H, W]``
(or ``None``) and applies the *same* geometry to all frames and masks. Frames are
resampled bilinearly, masks with nearest neighbour so label values are never mixed.
``rng`` may be ``None`` (torch global RNG), a ``torch.Generator``, a
``numpy.random.Generator`` or a ``random.Random``.
"""
from __future__ import annotations

import random as _random
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from ...data.transforms import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "random_scale", "random_crop", "random_flip",
    "resize", "normalize", "denormalize", "SegTrainTransform", "SegEvalTransform",
]

Size = Union[int, Sequence[int]]


def _uniform(rng, lo: float, hi: float) -> float:
    if rng is None or isinstance(rng, torch.Generator):
        u = float(torch.rand((), generator=rng))
    elif isinstance(rng, np.random.Generator):
        u = float(rng.random())
    elif isinstance(rng, _random.Random):
        u = rng.random()
    else:
        raise ValueError(f"unsupported rng type {type(rng).__name__}")
    return lo + (hi - lo) * u


def _randint(rng, n: int) -> int:
    """Uniform integer in ``[0, n)``."""
    return min(int(_uniform(rng, 0.0, float(n))), n - 1)


def _pair(size: Size, name: str = "size") -> Tuple[int, int]:
    if isinstance(size, int):
        size = (size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"{name} must be a positive int or (h, w), got {size}")
    return size


def _check(clip: torch.Tensor, masks: Optional[torch.Tensor]) -> None:
    if not isinstance(clip, torch.Tensor) or clip.dim() != 4:
        raise ValueError(f"clip must be a [T, C, H, W] tensor, got {getattr(clip, 'shape', type(clip))}")
    if masks is not None:
        if masks.dim() != 3 or masks.shape[0] != clip.shape[0] or masks.shape[1:] != clip.shape[2:]:
            raise ValueError(f"masks {tuple(masks.shape)} do not match clip {tuple(clip.shape)}")


def resize(clip: torch.Tensor, masks: Optional[torch.Tensor], size: Size):
    """Resize to ``size`` (int or ``(h, w)``): bilinear frames, nearest masks."""
    _check(clip, masks)
    h, w = _pair(size)
    if (h, w) == tuple(clip.shape[-2:]):
        return clip, masks
    clip = F.interpolate(clip.float(), size=(h, w), mode="bilinear", align_corners=False)
    if masks is not None:
        masks = F.interpolate(masks[:, None].float(), size=(h, w), mode="nearest-exact")[:, 0].long()
    return clip, masks


def random_scale(clip, masks, scale_range: Sequence[float] = (0.5, 2.0), rng=None):
    """Rescale by a factor drawn uniformly from ``scale_range`` (same for all frames)."""
    lo, hi = float(scale_range[0]), float(scale_range[1])
    if not 0 < lo <= hi:
        raise ValueError(f"scale_range must satisfy 0 < lo <= hi, got {scale_range}")
    _check(clip, masks)
    s = _uniform(rng, lo, hi)
    h, w = clip.shape[-2:]
    return resize(clip, masks, (max(1, round(h * s)), max(1, round(w * s))))


def random_crop(clip, masks, size: Size, rng=None, pad_value_mask: int = 255, pad_value_img: float = 0.0):
    """Crop a random ``size`` window; pads bottom/right first if the clip is smaller."""
    _check(clip, masks)
    ch, cw = _pair(size)
    h, w = clip.shape[-2:]
    ph, pw = max(ch - h, 0), max(cw - w, 0)
    if ph or pw:
        clip = F.pad(clip, (0, pw, 0, ph), value=pad_value_img)
        if masks is not None:
            masks = F.pad(masks, (0, pw, 0, ph), value=pad_value_mask)
        h, w = clip.shape[-2:]
    y = _randint(rng, h - ch + 1)
    x = _randint(rng, w - cw + 1)
    clip = clip[..., y : y + ch, x : x + cw]
    if masks is not None:
        masks = masks[..., y : y + ch, x : x + cw]
    return clip, masks


def random_flip(clip, masks, rng=None, p: float = 0.5):
    """Horizontal flip of the whole clip with probability ``p``."""
    _check(clip, masks)
    if _uniform(rng, 0.0, 1.0) < p:
        clip = clip.flip(-1)
        if masks is not None:
            masks = masks.flip(-1)
    return clip, masks


def normalize(clip: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
    """``(clip - mean) / std`` per channel; ``clip`` is ``[T, 3, H, W]`` in ``[0, 1]``."""
    m = torch.as_tensor(mean, dtype=clip.dtype, device=clip.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=clip.dtype, device=clip.device).view(1, -1, 1, 1)
    return (clip - m) / s


def denormalize(clip: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
    """Inverse of :func:`normalize`."""
    m = torch.as_tensor(mean, dtype=clip.dtype, device=clip.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=clip.dtype, device=clip.device).view(1, -1, 1, 1)
    return clip * s + m


class SegTrainTransform:
    """Training pipeline: [resize to ``base_size``] -> random scale -> random crop -> flip -> normalize."""

    def __init__(self, crop_size: Optional[Size] = None, scale_range: Optional[Sequence[float]] = (0.5, 2.0),
                 flip_prob: float = 0.5, base_size: Optional[Size] = None, do_normalize: bool = True,
                 ignore_index: int = 255):
        self.crop_size = None if crop_size is None else _pair(crop_size, "crop_size")
        self.scale_range = scale_range
        self.flip_prob = flip_prob
        self.base_size = None if base_size is None else _pair(base_size, "base_size")
        self.do_normalize = do_normalize
        self.ignore_index = ignore_index

    def __call__(self, clip, masks, rng=None):
        if self.base_size is not None:
            clip, masks = resize(clip, masks, self.base_size)
        if self.scale_range is not None:
            clip, masks = random_scale(clip, masks, self.scale_range, rng)
        if self.crop_size is not None:
            clip, masks = random_crop(clip, masks, self.crop_size, rng, pad_value_mask=self.ignore_index)
        if self.flip_prob > 0:
            clip, masks = random_flip(clip, masks, rng, self.flip_prob)
        if self.do_normalize:
            clip = normalize(clip)
        return clip.contiguous(), (None if masks is None else masks.contiguous())


class SegEvalTransform:
    """Evaluation pipeline: [resize to ``size``] -> normalize."""

    def __init__(self, size: Optional[Size] = None, do_normalize: bool = True):
        self.size = None if size is None else _pair(size)
        self.do_normalize = do_normalize

    def __call__(self, clip, masks, rng=None):
        if self.size is not None:
            clip, masks = resize(clip, masks, self.size)
        if self.do_normalize:
            clip = normalize(clip)
        return clip, masks
