"""Embedded synthetic 3-D pose task (no downloads, no licensed files).

:class:`SyntheticPoseVideos` generates, deterministically from
``(seed, split, index)``, smooth random motions of the built-in 24-joint
skeleton (:class:`~.skeleton.SimpleSkeleton`) and renders them with an
orthographic camera as thick, depth-shaded, colour-coded limbs.

Motion model: every joint angle (3 Euler angles per joint, ``R = Rz Ry Rx``
in the parent frame) is ``mid + half * (c + (1 - |c|) * u(t))`` where ``u`` is
a normalised sum of three sinusoids with random frequency (0.01 - 0.08 cycles
per frame), phase and amplitude, ``c`` a random offset, and ``[mid - half,
mid + half]`` an anatomical-ish range per joint and axis.  The root gets a
uniformly random heading (rotation about +y) with a slow drift, small
pitch/roll sway, and a small smooth translation.  ``betas[0]`` (height) and
``betas[1]`` (limb length) are random in ``[-1.5, 1.5]``; ``betas[2:] = 0``.

Coordinates: the camera frame equals the world frame (camera at ``+z``
looking along ``-z``; image right = ``+x``, image up = ``+y``; metres).
``target["joints"] = SimpleSkeleton()(pose, betas, transl)`` exactly, so
``joints[:, 0] == transl`` (pelvis position); root-relative joints are
``joints - joints[:, :1]``.
"""
from __future__ import annotations

import math
from typing import Dict, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from .render import render_skeleton_frames
from .rotations import matrix_to_rot6d
from .skeleton import JOINT_NAMES, NUM_JOINTS, SimpleSkeleton

__all__ = ["SyntheticPoseVideos", "SPLIT_CODES", "JOINT_LIMITS", "sample_motion"]

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}

# (x_lo, x_hi, y_lo, y_hi, z_lo, z_hi) in radians, local (parent) frame.
# +x rotation swings a downward bone backwards, so hip flexion is negative x and
# knee flexion positive x; +z raises the left arm / lowers the right arm;
# -y brings the left arm forward, +y the right arm.
_L = {
    "pelvis": (0, 0, 0, 0, 0, 0),  # root handled separately
    "left_hip": (-1.2, 0.3, -0.3, 0.3, -0.15, 0.6),
    "right_hip": (-1.2, 0.3, -0.3, 0.3, -0.6, 0.15),
    "spine1": (-0.15, 0.35, -0.25, 0.25, -0.2, 0.2),
    "left_knee": (0.0, 1.8, -0.05, 0.05, -0.05, 0.05),
    "right_knee": (0.0, 1.8, -0.05, 0.05, -0.05, 0.05),
    "spine2": (-0.1, 0.25, -0.2, 0.2, -0.15, 0.15),
    "left_ankle": (-0.4, 0.4, -0.2, 0.2, -0.2, 0.2),
    "right_ankle": (-0.4, 0.4, -0.2, 0.2, -0.2, 0.2),
    "spine3": (-0.1, 0.2, -0.2, 0.2, -0.1, 0.1),
    "left_foot": (-0.1, 0.1, 0, 0, 0, 0),
    "right_foot": (-0.1, 0.1, 0, 0, 0, 0),
    "neck": (-0.3, 0.4, -0.5, 0.5, -0.3, 0.3),
    "left_collar": (0, 0, -0.15, 0.15, -0.15, 0.25),
    "right_collar": (0, 0, -0.15, 0.15, -0.25, 0.15),
    "head": (-0.3, 0.3, -0.4, 0.4, -0.2, 0.2),
    "left_shoulder": (-0.5, 0.5, -1.2, 0.5, -1.3, 0.9),
    "right_shoulder": (-0.5, 0.5, -0.5, 1.2, -0.9, 1.3),
    "left_elbow": (-0.3, 0.3, -2.2, 0.0, 0, 0),
    "right_elbow": (-0.3, 0.3, 0.0, 2.2, 0, 0),
    "left_wrist": (-0.4, 0.4, -0.4, 0.4, -0.4, 0.4),
    "right_wrist": (-0.4, 0.4, -0.4, 0.4, -0.4, 0.4),
    "left_hand": (-0.2, 0.2, -0.2, 0.2, -0.2, 0.2),
    "right_hand": (-0.2, 0.2, -0.2, 0.2, -0.2, 0.2),
}
JOINT_LIMITS = np.array([_L[n] for n in JOINT_NAMES], dtype=np.float64).reshape(NUM_JOINTS, 3, 2)


def _smooth(rng: np.random.Generator, t: np.ndarray, n: int, k: int = 3,
            fmin: float = 0.01, fmax: float = 0.08) -> np.ndarray:
    """``n`` smooth signals in ``[-1, 1]`` over frames ``t`` -> ``[len(t), n]``."""
    amp = rng.uniform(0.2, 1.0, size=(n, k))
    freq = rng.uniform(fmin, fmax, size=(n, k))
    phase = rng.uniform(0.0, 2 * math.pi, size=(n, k))
    s = (amp * np.sin(2 * math.pi * freq * t[:, None, None] + phase)).sum(-1)
    return s / amp.sum(-1)


def _euler_to_matrix(ang: np.ndarray) -> np.ndarray:
    """``[..., 3]`` angles (x, y, z) -> ``Rz @ Ry @ Rx`` ``[..., 3, 3]``."""
    cx, cy, cz = np.cos(ang[..., 0]), np.cos(ang[..., 1]), np.cos(ang[..., 2])
    sx, sy, sz = np.sin(ang[..., 0]), np.sin(ang[..., 1]), np.sin(ang[..., 2])
    R = np.empty(ang.shape[:-1] + (3, 3))
    R[..., 0, 0] = cz * cy
    R[..., 0, 1] = cz * sy * sx - sz * cx
    R[..., 0, 2] = cz * sy * cx + sz * sx
    R[..., 1, 0] = sz * cy
    R[..., 1, 1] = sz * sy * sx + cz * cx
    R[..., 1, 2] = sz * sy * cx - cz * sx
    R[..., 2, 0] = -sy
    R[..., 2, 1] = cy * sx
    R[..., 2, 2] = cy * cx
    return R


def sample_motion(rng: np.random.Generator, num_frames: int):
    """Random smooth motion: ``(rotmats [T,24,3,3], betas [10], transl [T,3])`` as float64 numpy."""
    T = int(num_frames)
    t = np.arange(T, dtype=np.float64)
    lo, hi = JOINT_LIMITS[..., 0], JOINT_LIMITS[..., 1]  # [24, 3]
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    c = rng.uniform(-0.6, 0.6, size=(NUM_JOINTS, 3))
    u = _smooth(rng, t, NUM_JOINTS * 3).reshape(T, NUM_JOINTS, 3)
    ang = mid + half * (c + (1.0 - np.abs(c)) * u)
    # root: heading about +y with drift, small pitch / roll sway
    heading = rng.uniform(0, 2 * math.pi) + rng.uniform(-0.08, 0.08) * t
    sway = 0.15 * _smooth(rng, t, 2)
    ang[:, 0, 0] = sway[:, 0]
    ang[:, 0, 1] = heading
    ang[:, 0, 2] = sway[:, 1]
    rot = _euler_to_matrix(ang)
    # root as Ry(heading) @ Rz(roll) @ Rx(pitch): heading applied last (about world up)
    rot[:, 0] = _euler_to_matrix(np.stack([np.zeros(T), heading, np.zeros(T)], -1)) @ _euler_to_matrix(
        np.stack([sway[:, 0], np.zeros(T), sway[:, 1]], -1)
    )
    betas = np.zeros(10)
    betas[:2] = rng.uniform(-1.5, 1.5, size=2)
    base = rng.uniform(-0.1, 0.1, size=3) * np.array([1.0, 0.3, 1.0])
    vel = rng.uniform(-0.012, 0.012, size=3) * np.array([1.0, 0.0, 1.0])
    wobble = 0.03 * _smooth(rng, t, 3)
    transl = base + vel * t[:, None] + wobble
    transl = np.clip(transl, -0.35, 0.35)
    return rot, betas, transl


class SyntheticPoseVideos(Dataset):
    """Deterministic synthetic pose-tracking clips.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"`` (disjoint random streams).
        num_samples: dataset length.
        num_frames: frames per clip ``T``.
        size: image height = width in pixels.
        seed: base seed; sample ``i`` of ``split`` uses
            ``np.random.default_rng([seed, split_code, i])``.
        channels: 3 (RGB, left/right/torso colour-coded, depth-shaded),
            1 (grey levels), or 2 (event-like ON/OFF polarity frames: positive
            and negative brightness change w.r.t. the previous frame).

    Item: ``(clip, target)`` with ``clip`` float32 ``[T, channels, size, size]``
    in ``[0, 1]`` and ``target`` a dict of float32 tensors:
    ``joints [T, 24, 3]`` (metres, camera frame, ``joints[:, 0] == transl``),
    ``pose_6d [T, 24, 6]`` (local rotations, 6-D = first two matrix columns),
    ``betas [10]``, ``transl [T, 3]``.
    """

    def __init__(self, split: str = "train", num_samples: int = 1000, num_frames: int = 8,
                 size: int = 64, seed: int = 0, channels: int = 3):
        if split not in SPLIT_CODES:
            raise ValueError(f"split must be one of {sorted(SPLIT_CODES)}, got {split!r}")
        if channels not in (1, 2, 3):
            raise ValueError("channels must be 1, 2 or 3")
        if num_frames < 1 or size < 8 or num_samples < 0:
            raise ValueError("need num_frames >= 1, size >= 8, num_samples >= 0")
        self.split = split
        self.num_samples = int(num_samples)
        self.num_frames = int(num_frames)
        self.size = int(size)
        self.seed = int(seed)
        self.channels = int(channels)
        self.body = SimpleSkeleton()

    def __len__(self) -> int:
        return self.num_samples

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, SPLIT_CODES[self.split], int(index)])

    @torch.no_grad()
    def __getitem__(self, index: int) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        if index < 0:
            index += self.num_samples
        if not 0 <= index < self.num_samples:
            raise IndexError(index)
        T = self.num_frames
        extra = 1 if self.channels == 2 else 0  # one frame before t=0 for event differences
        rot, betas, transl = sample_motion(self.rng(index), T + extra)
        rot_t = torch.from_numpy(rot).float()
        betas_t = torch.from_numpy(betas).float()
        transl_t = torch.from_numpy(transl).float()
        joints = self.body(rot_t, betas_t, transl_t)  # [T+extra, 24, 3]
        if self.channels == 2:
            grey = render_skeleton_frames(joints.numpy(), self.size, channels=1)[..., 0]
            diff = grey[1:] - grey[:-1]
            img = np.stack([np.clip(diff, 0, 1), np.clip(-diff, 0, 1)], axis=1)
            rot_t, transl_t, joints = rot_t[1:], transl_t[1:], joints[1:]
        else:
            img = render_skeleton_frames(joints.numpy(), self.size, channels=self.channels)
            img = img.transpose(0, 3, 1, 2)
        clip = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))
        target = {
            "joints": joints.contiguous(),
            "pose_6d": matrix_to_rot6d(rot_t).contiguous(),
            "betas": betas_t,
            "transl": transl_t.contiguous(),
        }
        return clip, target
