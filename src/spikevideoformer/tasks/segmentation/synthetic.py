"""Embedded synthetic video segmentation task (no download needed).

Each clip shows 2-3 textured shapes moving with constant velocity (and slow rotation)
over a panning smooth-noise background, drawn back to front so later shapes occlude
earlier ones. Label 0 = background, label k >= 1 = shape type ``SHAPES[k - 1]``. Every
shape type has a characteristic texture and a hue range (jittered per instance), so a
small network can learn it quickly while colour alone is not a perfect cue.
Everything is generated deterministically from ``(seed, split, index)``.
"""
from __future__ import annotations

import math
from typing import Dict, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .metrics import ConfusionMatrix

__all__ = ["SHAPES", "SyntheticSegVideos", "majority_class_baseline"]

SHAPES = ("disc", "square", "triangle", "ring", "cross", "diamond")
_SPLITS = {"train": 0, "val": 1, "test": 2}


def _shape_mask(kind: str, u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    """Inside-test in object-local coordinates ``(u, v)`` for a shape of radius ``r``."""
    if kind == "disc":
        return u * u + v * v <= r * r
    if kind == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.85 * r
    if kind == "triangle":
        rr = 1.15 * r
        inside = np.ones(u.shape, dtype=bool)
        for deg in (90.0, 210.0, 330.0):  # outward edge normals; inradius = rr / 2
            a = math.radians(deg)
            inside &= u * math.cos(a) + v * math.sin(a) <= rr / 2
        return inside
    if kind == "ring":
        d2 = u * u + v * v
        return (d2 <= r * r) & (d2 >= (0.55 * r) ** 2)
    if kind == "cross":
        au, av = np.abs(u), np.abs(v)
        t = 0.35 * r
        return ((au <= t) & (av <= r)) | ((av <= t) & (au <= r))
    if kind == "diamond":
        return np.abs(u) + np.abs(v) <= 1.15 * r
    raise ValueError(f"unknown shape {kind}")


def _texture(kind: str, u: np.ndarray, v: np.ndarray, phase: float) -> np.ndarray:
    """Class-specific brightness pattern in [0, 1], attached to the object frame."""
    if kind == "disc":  # stripes
        return 0.5 + 0.5 * np.sin(u * (2 * math.pi / 4.0) + phase)
    if kind == "square":  # checkerboard
        return ((np.floor(u / 3.0) + np.floor(v / 3.0)) % 2).astype(np.float32)
    if kind == "triangle":  # dots
        return (np.sin(u * 1.6 + phase) * np.sin(v * 1.6)) ** 2
    if kind == "ring":  # nearly flat
        return np.full_like(u, 0.8)
    if kind == "cross":  # diagonal stripes
        return 0.5 + 0.5 * np.sign(np.sin((u + v) * (2 * math.pi / 5.0) + phase))
    return 0.5 + 0.5 * np.cos(np.sqrt(u * u + v * v) * 1.3 + phase)  # diamond: concentric rings


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    k = (np.array([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
    return (v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)).astype(np.float32)


class SyntheticSegVideos(Dataset):
    """Deterministic synthetic video segmentation clips.

    ``__getitem__`` returns ``(clip float32 [T, 3, H, W] in [0, 1], masks int64 [T, H, W])``.
    ``num_classes`` counts the background, so at most ``len(SHAPES) + 1`` (7).
    """

    def __init__(self, split: str = "train", num_samples: int = 256, num_frames: int = 8, size: int = 64,
                 num_classes: int = 4, seed: int = 0, noise: float = 0.03):
        if split not in _SPLITS:
            raise ValueError(f"split must be one of {sorted(_SPLITS)}, got {split!r}")
        if not 2 <= num_classes <= len(SHAPES) + 1:
            raise ValueError(f"num_classes must be in [2, {len(SHAPES) + 1}], got {num_classes}")
        if num_samples < 1 or num_frames < 1 or size < 16:
            raise ValueError(f"need num_samples >= 1, num_frames >= 1, size >= 16 "
                             f"(got {num_samples}, {num_frames}, {size})")
        self.split, self.num_samples, self.num_frames = split, int(num_samples), int(num_frames)
        self.size, self.num_classes, self.seed, self.noise = int(size), int(num_classes), int(seed), float(noise)
        self.class_names = ("background",) + SHAPES[: num_classes - 1]
        self.ignore_index = 255
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
        self._xx, self._yy = xx, yy
        self._pad = self.num_frames  # background margin for panning (<= 1 px / frame)
        big = size + 2 * self._pad
        self._big_yy, self._big_xx = np.mgrid[0:big, 0:big].astype(np.float32)

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        clip, masks, _ = self.generate(index)
        return clip, masks

    def _background(self, rng: np.random.Generator) -> np.ndarray:
        t, s = self.num_frames, self.size
        pad = self._pad
        big = s + 2 * pad
        g = rng.random((1, 3, 5, 5), dtype=np.float32)
        grey = g.mean(1, keepdims=True)
        g = 0.25 + 0.5 * (0.45 * g + 0.55 * grey)  # desaturated, mid brightness
        bg = F.interpolate(torch.from_numpy(g), size=(big, big), mode="bicubic", align_corners=False)
        bg = bg[0].permute(1, 2, 0).numpy()
        ang, per = rng.uniform(0, math.pi), rng.uniform(6.0, 14.0)
        yy, xx = self._big_yy, self._big_xx
        stripes = np.sin((xx * math.cos(ang) + yy * math.sin(ang)) * (2 * math.pi / per))
        bg = bg + rng.uniform(0.0, 0.06) * stripes[..., None]
        vy, vx = rng.uniform(-1.0, 1.0, size=2)
        frames = np.empty((t, s, s, 3), dtype=np.float32)
        for i in range(t):
            oy, ox = pad + int(round(vy * i)), pad + int(round(vx * i))
            frames[i] = bg[oy : oy + s, ox : ox + s]
        return frames

    def generate(self, index: int) -> Tuple[torch.Tensor, torch.Tensor, Dict[str, object]]:
        """Return ``(clip, masks, info)``; ``info`` has ``instances`` (``[T, H, W]`` int64, 0 =
        background, j = j-th object in depth order, back to front) and ``classes`` per object."""
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples")
        rng = np.random.default_rng([self.seed, _SPLITS[self.split], int(index)])
        t, s = self.num_frames, self.size
        img = self._background(rng)
        labels = np.zeros((t, s, s), dtype=np.int64)
        inst = np.zeros((t, s, s), dtype=np.int64)
        n_obj = int(rng.integers(2, 4))
        classes = [1 + index % (self.num_classes - 1)] + [int(c) for c in rng.integers(1, self.num_classes, n_obj - 1)]
        rng.shuffle(classes)
        steps = np.arange(t, dtype=np.float32)[:, None, None]
        for j, c in enumerate(classes):
            kind = SHAPES[c - 1]
            r = float(rng.uniform(0.12, 0.2) * s)
            pos, vel = [], []
            for _ in range(2):
                d = float(rng.uniform(-2.0, 2.0) * s / 64.0)
                lo, hi = r - min(0.0, d * (t - 1)), s - r - max(0.0, d * (t - 1))
                if lo > hi:
                    d, lo, hi = 0.0, r, s - r
                pos.append(rng.uniform(lo, hi))
                vel.append(d)
            ang0, dang = rng.uniform(0, 2 * math.pi), rng.uniform(-0.12, 0.12)
            cx = pos[0] + vel[0] * steps
            cy = pos[1] + vel[1] * steps
            a = ang0 + dang * steps
            ca, sa = np.cos(a), np.sin(a)
            dx, dy = self._xx[None] - cx, self._yy[None] - cy
            u = (ca * dx + sa * dy).astype(np.float32)
            v = (-sa * dx + ca * dy).astype(np.float32)
            m = _shape_mask(kind, u, v, r)
            hue = (c - 1) / len(SHAPES) + rng.uniform(-0.08, 0.08)
            col = _hsv_to_rgb(hue % 1.0, rng.uniform(0.55, 0.9), rng.uniform(0.65, 0.95))
            um, vm = u[m], v[m]  # texture only where the object is visible
            pat = _texture(kind, um, vm, float(rng.uniform(0, 2 * math.pi)))
            img[m] = col * (0.6 + 0.4 * pat.astype(np.float32))[:, None]
            labels[m] = c
            inst[m] = j + 1
        if self.noise > 0:
            img += self.noise * rng.standard_normal(img.shape, dtype=np.float32)
        np.clip(img, 0.0, 1.0, out=img)
        clip = torch.from_numpy(np.ascontiguousarray(img.transpose(0, 3, 1, 2)))
        return clip, torch.from_numpy(labels), {"instances": torch.from_numpy(inst), "classes": classes}


def majority_class_baseline(dataset, num_classes: int = None, ignore_index: int = 255) -> float:
    """mIoU of predicting the dataset's most frequent class at every labelled pixel."""
    num_classes = int(num_classes or getattr(dataset, "num_classes", 0))
    if num_classes < 1:
        raise ValueError("num_classes is required when the dataset has no num_classes attribute")
    counts = torch.zeros(num_classes, dtype=torch.long)
    for i in range(len(dataset)):
        m = dataset[i][1]
        m = m[m != ignore_index]
        counts += torch.bincount(m.reshape(-1), minlength=num_classes)[:num_classes]
    if counts.sum() == 0:
        raise ValueError("dataset has no labelled pixels")
    cm = ConfusionMatrix(num_classes, ignore_index)
    cm.matrix[:, int(counts.argmax())] = counts
    return cm.compute()["miou"]
