"""Rotation representation conversions (torch, batched over any leading dims).

Conventions
-----------
* Rotation matrices act on column vectors: ``v' = R @ v``.  Shape ``[..., 3, 3]``.
* Axis-angle vectors ``[..., 3]``: direction = rotation axis, norm = angle in
  radians (right-hand rule), as used by SMPL's ``pose`` parameters.
* 6-D representation (Zhou et al., CVPR 2019, "On the Continuity of Rotation
  Representations in Neural Networks"): the **first two columns** of the
  rotation matrix, concatenated column after column::

      rot6d = [R[0,0], R[1,0], R[2,0],  R[0,1], R[1,1], R[2,1]]

  i.e. ``rot6d[..., :3] = R[..., :, 0]`` and ``rot6d[..., 3:] = R[..., :, 1]``.
  (Note: some code bases instead use ``R[..., :, :2].reshape(..., 6)``, which
  interleaves the two columns; that is *not* the convention used here.)
* Quaternions ``[..., 4]`` are ``(w, x, y, z)`` with the scalar part first.
"""
from __future__ import annotations

import torch

__all__ = [
    "rot6d_to_matrix",
    "matrix_to_rot6d",
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "matrix_to_quaternion",
    "quaternion_to_matrix",
    "quaternion_to_axis_angle",
    "axis_angle_to_rot6d",
    "rot6d_to_axis_angle",
    "skew",
]


def skew(v: torch.Tensor) -> torch.Tensor:
    """Cross-product matrix ``[v]_x`` of ``v`` ``[..., 3]`` -> ``[..., 3, 3]``."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack(
        [torch.stack([o, -z, y], -1), torch.stack([z, o, -x], -1), torch.stack([-y, x, o], -1)],
        dim=-2,
    )


def rot6d_to_matrix(rot6d: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Map an arbitrary 6-D vector ``[..., 6]`` to a rotation matrix ``[..., 3, 3]``.

    Gram-Schmidt on the two 3-vectors ``a = rot6d[..., :3]`` (first column) and
    ``b = rot6d[..., 3:]`` (second column); the third column is their cross
    product, so the result is always orthonormal with determinant +1.
    """
    if rot6d.shape[-1] != 6:
        raise ValueError(f"rot6d must have last dim 6, got shape {tuple(rot6d.shape)}")
    a, b = rot6d[..., :3], rot6d[..., 3:]
    c1 = a / a.norm(dim=-1, keepdim=True).clamp_min(eps)
    b = b - (c1 * b).sum(-1, keepdim=True) * c1
    c2 = b / b.norm(dim=-1, keepdim=True).clamp_min(eps)
    c3 = torch.cross(c1, c2, dim=-1)
    return torch.stack([c1, c2, c3], dim=-1)


def matrix_to_rot6d(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrix ``[..., 3, 3]`` -> 6-D vector ``[..., 6]`` (first two columns)."""
    if matrix.shape[-2:] != (3, 3):
        raise ValueError(f"matrix must be [..., 3, 3], got {tuple(matrix.shape)}")
    return torch.cat([matrix[..., :, 0], matrix[..., :, 1]], dim=-1)


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula ``[..., 3] -> [..., 3, 3]``, numerically stable near 0.

    ``R = I + a K + b K^2`` with ``K = [v]_x`` (unnormalised), ``a = sin(t)/t``
    and ``b = (1 - cos t)/t^2``; Taylor expansions are used for tiny ``t``.
    """
    if axis_angle.shape[-1] != 3:
        raise ValueError(f"axis_angle must have last dim 3, got {tuple(axis_angle.shape)}")
    theta2 = (axis_angle * axis_angle).sum(-1)
    small = theta2 < 1e-8
    theta2_safe = torch.where(small, torch.ones_like(theta2), theta2)
    theta = theta2_safe.sqrt()
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / theta2_safe)
    K = skew(axis_angle)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand(K.shape)
    return eye + a[..., None, None] * K + b[..., None, None] * (K @ K)


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrix ``[..., 3, 3]`` -> unit quaternion ``(w, x, y, z)`` with ``w >= 0``.

    Uses the largest of the four diagonal-derived candidates (Shepperd's
    method) so it is well conditioned for every rotation, including angles
    close to pi.
    """
    if matrix.shape[-2:] != (3, 3):
        raise ValueError(f"matrix must be [..., 3, 3], got {tuple(matrix.shape)}")
    m = matrix
    r00, r01, r02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    r10, r11, r12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    r20, r21, r22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # 4 * squared components
    q2 = torch.stack(
        [1 + r00 + r11 + r22, 1 + r00 - r11 - r22, 1 - r00 + r11 - r22, 1 - r00 - r11 + r22], -1
    )
    best = q2.argmax(-1, keepdim=True)
    s = q2.clamp_min(1e-12).sqrt()  # = 2 * |component|
    sw, sx, sy, sz = s.unbind(-1)
    cand = torch.stack(
        [
            torch.stack([sw * sw, r21 - r12, r02 - r20, r10 - r01], -1) / (2 * sw[..., None]),
            torch.stack([r21 - r12, sx * sx, r01 + r10, r02 + r20], -1) / (2 * sx[..., None]),
            torch.stack([r02 - r20, r01 + r10, sy * sy, r12 + r21], -1) / (2 * sy[..., None]),
            torch.stack([r10 - r01, r02 + r20, r12 + r21, sz * sz], -1) / (2 * sz[..., None]),
        ],
        dim=-2,
    )  # [..., 4 candidates, 4 components]
    q = torch.gather(cand, -2, best[..., None].expand(*best.shape[:-1], 1, 4)).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_matrix(quaternion: torch.Tensor) -> torch.Tensor:
    """Quaternion ``(w, x, y, z)`` ``[..., 4]`` (normalised internally) -> ``[..., 3, 3]``."""
    q = quaternion / quaternion.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        dim=-2,
    )


def quaternion_to_axis_angle(quaternion: torch.Tensor) -> torch.Tensor:
    """Quaternion ``(w, x, y, z)`` -> axis-angle ``[..., 3]`` with angle in ``[0, pi]``."""
    q = quaternion / quaternion.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    q = torch.where(q[..., :1] < 0, -q, q)
    w, v = q[..., 0], q[..., 1:]
    vn = v.norm(dim=-1)
    angle = 2.0 * torch.atan2(vn, w)
    small = vn < 1e-6
    vn_safe = torch.where(small, torch.ones_like(vn), vn)
    # angle / sin(angle/2); for small angles ~ 2 / w * (1 + angle^2 / 24)
    factor = torch.where(small, 2.0 / w.clamp_min(1e-12) * (1.0 + angle * angle / 24.0), angle / vn_safe)
    return v * factor[..., None]


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrix ``[..., 3, 3]`` -> axis-angle ``[..., 3]`` (angle in ``[0, pi]``).

    Goes through the quaternion, which is stable both near the identity and
    near 180 degree rotations (where the axis sign is arbitrary).
    """
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


def axis_angle_to_rot6d(axis_angle: torch.Tensor) -> torch.Tensor:
    """Axis-angle ``[..., 3]`` -> 6-D ``[..., 6]``."""
    return matrix_to_rot6d(axis_angle_to_matrix(axis_angle))


def rot6d_to_axis_angle(rot6d: torch.Tensor) -> torch.Tensor:
    """6-D ``[..., 6]`` -> axis-angle ``[..., 3]``."""
    return matrix_to_axis_angle(rot6d_to_matrix(rot6d))
