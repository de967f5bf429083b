"""MovingDigits: a small, embedded *temporal* video-classification task.

Clips show real handwritten digits (``sklearn.datasets.load_digits``, 8x8
images) moving on a black toroidal canvas.  With ``num_classes=4`` one digit
moves horizontally and another vertically; the class is the pair of motion
directions (``"left+up"``, ``"left+down"``, ``"right+up"``, ``"right+down"``).
With ``num_classes=2`` a single digit moves left or right.

Start positions are uniform and motion wraps around the canvas, so the
distribution of every single frame -- and of the frame average (a horizontal
plus a vertical smear) -- is identical for all classes: the label can only be
read from how the frames change over time.

Digits are composited additively (never max/clamp), so overlaps do not leak
the relative timing of the two movers into the frame average.

Clips are generated on the fly and deterministically from ``(seed, split,
index)``; nothing is stored.  Splits use disjoint subsets of the 1797 digit
images (fixed 70/15/15 permutation) and disjoint random streams.
"""
from __future__ import annotations

import threading
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from .transforms import _pos_int

__all__ = ["MovingDigits", "DigitFrames", "split_and_size", "load_digit_images", "digit_split_indices",
           "load_digits_targets"]

SPLITS = ("train", "val", "test")
_SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
_DEFAULT_NUM_SAMPLES = {"train": 5000, "val": 1000, "test": 1000}


def split_and_size(split: str, num_samples: Optional[int]) -> Tuple[str, int]:
    """``(split, num_samples)`` of an embedded digit dataset, checked; ``num_samples=None`` is
    the split's default size (5000 / 1000 / 1000)."""
    if split not in _SPLIT_IDS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if num_samples is None:
        num_samples = _DEFAULT_NUM_SAMPLES[split]
    return split, _pos_int("num_samples", num_samples)
_SPLIT_FRACTIONS = (0.70, 0.15, 0.15)
_PERMUTATION_SEED = 20250706  # fixed: the digit-image split never depends on `seed`
_CLASS_NAMES = {
    2: ["left", "right"],
    4: ["left+up", "left+down", "right+up", "right+down"],
}

# RGB colours of the horizontal / vertical mover; they sum to <= 1 in every channel.
_RGB_COLOURS = ((1.0, 0.0, 0.5), (0.0, 1.0, 0.5))

_DIGITS_CACHE: Optional[np.ndarray] = None
_SPRITE_CACHE: dict = {}
_LOCK = threading.Lock()


def load_digit_images() -> np.ndarray:
    """Return the 1797 sklearn digit images as float32 ``[1797, 8, 8]`` in [0, 1] (cached)."""
    global _DIGITS_CACHE
    with _LOCK:
        if _DIGITS_CACHE is None:
            from sklearn.datasets import load_digits

            images = load_digits().images.astype(np.float32) / 16.0
            _DIGITS_CACHE = np.clip(images, 0.0, 1.0)
        return _DIGITS_CACHE


def digit_split_indices(split: str) -> np.ndarray:
    """Indices of the digit images reserved for ``split`` (disjoint across splits)."""
    if split not in _SPLIT_IDS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    n = load_digit_images().shape[0]
    perm = np.random.default_rng(_PERMUTATION_SEED).permutation(n)
    n_train = int(round(_SPLIT_FRACTIONS[0] * n))
    n_val = int(round(_SPLIT_FRACTIONS[1] * n))
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, n)}
    lo, hi = bounds[split]
    return np.sort(perm[lo:hi])


def _sprites(scale: int) -> np.ndarray:
    """All digit images upscaled (bilinear) to ``scale x scale``, float32 in [0, 1] (cached)."""
    with _LOCK:
        cached = _SPRITE_CACHE.get(scale)
    if cached is not None:
        return cached
    images = torch.from_numpy(load_digit_images()).unsqueeze(1)
    up = torch.nn.functional.interpolate(images, size=(scale, scale), mode="bilinear", align_corners=False)
    sprites = up.squeeze(1).clamp_(0.0, 1.0).numpy().astype(np.float32)
    with _LOCK:
        _SPRITE_CACHE[scale] = sprites
    return sprites


class MovingDigits(Dataset):
    """Deterministic moving-digit clips whose label is only visible through motion.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        num_samples: number of clips (default 5000 for train, 1000 otherwise).
        num_frames: frames per clip ``T``.
        size: canvas height and width in pixels.
        num_classes: 4 (horizontal x vertical direction) or 2 (left vs right).
        seed: base seed; ``(seed, split, index)`` fully determines a clip.
        channels: output channels.  With 3 channels (4 classes) the horizontal
            mover is drawn in (1, 0, .5) and the vertical one in (0, 1, .5);
            otherwise digits are grey (each at intensity 1/num_digits).
            Digits are composited additively so values stay in [0, 1].
        digit_scale: digit sprite size in pixels (default ``0.36 * size``).
        speed: pixels per frame, a number or a ``(low, high)`` range sampled
            per clip (default ``(0.19 * size, 0.25 * size)``: fast enough that svf_tiny
            learns the direction in a few hundred steps; below size/2, so it stays unambiguous).

    ``ds[i]`` returns ``(clip, label)`` with ``clip`` float32
    ``[num_frames, channels, size, size]`` in [0, 1] and ``label`` an int.
    Labels are exactly balanced (``label = index % num_classes``).
    """

    def __init__(
        self,
        split: str = "train",
        num_samples: Optional[int] = None,
        num_frames: int = 8,
        size: int = 32,
        num_classes: int = 4,
        seed: int = 0,
        channels: int = 3,
        digit_scale: Optional[int] = None,
        speed: Union[float, Sequence[float], None] = None,
    ) -> None:
        self.split, self.num_samples = split_and_size(split, num_samples)
        self.num_frames = _pos_int("num_frames", num_frames, 2)
        self.size = _pos_int("size", size, 8)
        self.channels = _pos_int("channels", channels)
        self.seed = _pos_int("seed", seed, 0)
        if num_classes not in _CLASS_NAMES:
            raise ValueError(f"num_classes must be 2 or 4, got {num_classes!r}")
        self.num_classes = int(num_classes)
        if digit_scale is None:
            digit_scale = max(4, int(round(0.36 * self.size)))
        self.digit_scale = _pos_int("digit_scale", digit_scale, 2)
        if self.digit_scale > self.size:
            raise ValueError(f"digit_scale ({self.digit_scale}) must be <= size ({self.size})")
        if speed is None:
            speed = (0.19 * self.size, 0.25 * self.size)
        self.speed_range = self._parse_speed(speed)
        if self.speed_range[1] >= self.size / 2:
            raise ValueError(f"speed must be < size / 2 = {self.size / 2} px/frame (wrap-around would "
                             f"make the direction ambiguous), got {self.speed_range[1]}")
        self.classes = list(_CLASS_NAMES[self.num_classes])
        self.digit_indices = digit_split_indices(split)

    @staticmethod
    def _parse_speed(speed) -> Tuple[float, float]:
        if isinstance(speed, (int, float, np.integer, np.floating)) and not isinstance(speed, bool):
            lo = hi = float(speed)
        elif isinstance(speed, (tuple, list)) and len(speed) == 2:
            lo, hi = float(speed[0]), float(speed[1])
        else:
            raise TypeError(f"speed must be a number or a (low, high) pair, got {speed!r}")
        if not (0.0 < lo <= hi):
            raise ValueError(f"speed must satisfy 0 < low <= high, got ({lo}, {hi})")
        return lo, hi

    def __len__(self) -> int:
        return self.num_samples

    def _rng(self, index: int) -> np.random.Generator:
        # SeedSequence over (seed, split, index): disjoint, reproducible streams.
        return np.random.default_rng([self.seed, _SPLIT_IDS[self.split], index, 0x5D161])

    def clip_params(self, index: int) -> dict:
        """The random parameters of clip ``index`` (digit ids, start positions, velocities)."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an int, got {type(index).__name__}")
        if not -self.num_samples <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for MovingDigits of length {self.num_samples}")
        index = int(index) % self.num_samples
        rng = self._rng(index)
        label = index % self.num_classes
        n_digits = 2 if self.num_classes == 4 else 1
        digits = rng.choice(self.digit_indices, size=n_digits, replace=False)
        free = self.size - self.digit_scale  # range of the static coordinate
        lo, hi = self.speed_range
        movers = []
        # mover 0: horizontal (sign = label bit 1 for 4 classes, label for 2 classes)
        right = (label >> 1) if self.num_classes == 4 else label
        vx = rng.uniform(lo, hi) * (1.0 if right else -1.0)
        movers.append(dict(digit=int(digits[0]), axis=1, start=rng.uniform(0, self.size),
                           other=int(rng.integers(0, free + 1)), velocity=vx))
        if self.num_classes == 4:
            down = label & 1
            vy = rng.uniform(lo, hi) * (1.0 if down else -1.0)
            movers.append(dict(digit=int(digits[1]), axis=0, start=rng.uniform(0, self.size),
                               other=int(rng.integers(0, free + 1)), velocity=vy))
        return dict(index=index, label=label, movers=movers)

    def render(self, params: dict) -> np.ndarray:
        """Render clip parameters into per-digit grey layers, float32 ``[num_digits, T, size, size]``."""
        sprites = _sprites(self.digit_scale)
        s, d = self.size, self.digit_scale
        layers = np.zeros((len(params["movers"]), self.num_frames, s, s), dtype=np.float32)
        for k, m in enumerate(params["movers"]):
            patch = np.zeros((s, s), dtype=np.float32)
            patch[:d, :d] = sprites[m["digit"]]
            for t in range(self.num_frames):
                pos = int(np.floor(m["start"] + m["velocity"] * t)) % s
                shift = (pos, m["other"]) if m["axis"] == 0 else (m["other"], pos)
                layers[k, t] = np.roll(patch, shift, axis=(0, 1))
        return layers

    def _colours(self, num_digits: int) -> np.ndarray:
        # Linear (additive) compositing keeps frames and frame averages class-independent;
        # a max/clamp would leak the relative timing of the two digits where they overlap.
        if num_digits == 1:
            return np.ones((1, self.channels), dtype=np.float32)
        if self.channels == 3:
            return np.array(_RGB_COLOURS, dtype=np.float32)
        return np.full((num_digits, self.channels), 1.0 / num_digits, dtype=np.float32)

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, int]:
        params = self.clip_params(index)
        layers = self.render(params)  # [M, T, H, W]
        clip = np.einsum("mthw,mc->tchw", layers, self._colours(layers.shape[0]))
        return torch.from_numpy(np.clip(clip, 0.0, 1.0).astype(np.float32, copy=False)), params["label"]

    def __repr__(self) -> str:
        return (f"MovingDigits(split={self.split!r}, num_samples={self.num_samples}, "
                f"num_frames={self.num_frames}, size={self.size}, num_classes={self.num_classes}, "
                f"seed={self.seed}, channels={self.channels}, digit_scale={self.digit_scale}, "
                f"speed={self.speed_range})")


class DigitFrames(Dataset):
    """Single frames (T = 1) of the same digits, labelled by digit identity (10 classes).

    The "image pre-training" set of the ablation study (docs/design.md §4: backbones start from T = 1
    image weights): one digit drawn like a MovingDigits mover (same size and colours) at a
    uniformly random position. Returns ``(clip [1, channels, size, size], digit)``.
    """

    classes = [str(i) for i in range(10)]

    def __init__(self, split: str = "train", num_samples: Optional[int] = None, size: int = 32,
                 seed: int = 0, channels: int = 3, digit_scale: Optional[int] = None) -> None:
        self.split, self.num_samples = split_and_size(split, num_samples)
        self.size, self.seed = _pos_int("size", size, 8), int(seed)
        self.channels = _pos_int("channels", channels)
        self.digit_scale = digit_scale or max(4, int(round(0.36 * self.size)))
        self.digit_indices = digit_split_indices(split)
        self.targets = load_digits_targets()

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, int]:
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for DigitFrames of length {self.num_samples}")
        rng = np.random.default_rng([self.seed, _SPLIT_IDS[self.split], int(index), 0xD161])
        digit = int(rng.choice(self.digit_indices))
        s, d = self.size, self.digit_scale
        y, x = rng.integers(0, s - d + 1, size=2)
        frame = np.zeros((s, s), dtype=np.float32)
        frame[y:y + d, x:x + d] = _sprites(d)[digit]
        colour = np.array(_RGB_COLOURS[int(rng.integers(0, 2))] if self.channels == 3
                          else [1.0] * self.channels, dtype=np.float32)
        clip = frame[None, None] * colour[None, :, None, None]
        return torch.from_numpy(clip), int(self.targets[digit])


def load_digits_targets() -> np.ndarray:
    """Digit class (0-9) of each of the 1797 images returned by :func:`load_digit_images`."""
    from sklearn.datasets import load_digits
    return load_digits().target.astype(np.int64)
