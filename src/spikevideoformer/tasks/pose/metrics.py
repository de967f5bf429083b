"""3-D pose metrics.  Inputs in metres, outputs in millimetres.

All per-sample functions take ``pred`` and ``target`` of shape ``[..., J, 3]``
(torch tensors or numpy arrays) and return a torch tensor of shape ``[...]``:
the mean over the ``J`` joints of the per-joint Euclidean error, in mm.
Computation is done in float64.
"""
from __future__ import annotations

import math
from typing import Dict

import torch

__all__ = [
    "mpjpe",
    "pa_mpjpe",
    "pel_mpjpe",
    "accel_error",
    "procrustes_align",
    "compute_pose_metrics",
]

M_TO_MM = 1000.0


def _pair(pred, target):
    pred = torch.as_tensor(pred).detach().to(torch.float64)
    target = torch.as_tensor(target).detach().to(device=pred.device, dtype=torch.float64)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if pred.ndim < 2 or pred.shape[-1] != 3:
        raise ValueError(f"expected [..., J, 3], got {tuple(pred.shape)}")
    return pred, target


def mpjpe(pred, target) -> torch.Tensor:
    """Mean per-joint position error (mm), no alignment. ``[..., J, 3] -> [...]``."""
    pred, target = _pair(pred, target)
    return (pred - target).norm(dim=-1).mean(-1) * M_TO_MM


def pel_mpjpe(pred, target, pelvis_index: int = 0) -> torch.Tensor:
    """MPJPE after subtracting the pelvis (joint ``pelvis_index``) from both (mm)."""
    pred, target = _pair(pred, target)
    pred = pred - pred[..., pelvis_index : pelvis_index + 1, :]
    target = target - target[..., pelvis_index : pelvis_index + 1, :]
    return (pred - target).norm(dim=-1).mean(-1) * M_TO_MM


def _similarity(p: torch.Tensor, q: torch.Tensor, eps: float):
    """``(s, R, mu_p, mu_q)`` of the similarity transform best aligning ``p`` to ``q`` (float64)."""
    mu_p = p.mean(-2, keepdim=True)
    mu_q = q.mean(-2, keepdim=True)
    X = p - mu_p
    Y = q - mu_q
    K = X.transpose(-1, -2) @ Y  # [..., 3, 3] = sum_j x_j y_j^T
    U, S, Vh = torch.linalg.svd(K)
    V = Vh.transpose(-1, -2)
    d = torch.sign(torch.linalg.det(V @ U.transpose(-1, -2)))
    d = torch.where(d == 0, torch.ones_like(d), d)
    D = torch.ones_like(S)
    D[..., -1] = d
    R = V @ (D[..., :, None] * U.transpose(-1, -2))  # V diag(D) U^T
    var = (X * X).sum((-1, -2))
    s = (S * D).sum(-1) / var.clamp_min(eps)
    return s, R, mu_p, mu_q


def procrustes_align(pred, target, eps: float = 1e-12, differentiable: bool = False) -> torch.Tensor:
    """Align ``pred`` to ``target`` per sample with the optimal similarity transform.

    Finds scale ``s``, proper rotation ``R`` (``det R = +1``; reflections are not
    allowed) and translation ``t`` minimising ``sum_j |s R p_j + t - q_j|^2``
    (Umeyama 1991), and returns ``s R p_j + t`` with shape ``[..., J, 3]``, in float64.
    ``differentiable=True`` (training losses): the transform is still fitted in float64
    without gradient (the SVD never enters backward), then applied to ``pred`` in its own
    dtype so that gradients flow to ``pred``.
    """
    p, q = _pair(pred, target)
    if differentiable:
        with torch.no_grad():
            s, R, mu_p, mu_q = _similarity(p, q, eps)
            A = (s[..., None, None] * R.transpose(-1, -2)).to(pred.dtype)  # x -> x @ A
            mu_p, mu_q = mu_p.to(pred.dtype), mu_q.to(pred.dtype)
        return (pred - mu_p) @ A + mu_q
    s, R, mu_p, mu_q = _similarity(p, q, eps)
    return s[..., None, None] * ((p - mu_p) @ R.transpose(-1, -2)) + mu_q


def pa_mpjpe(pred, target) -> torch.Tensor:
    """Procrustes-aligned MPJPE (mm): per sample, scale + rotation + translation removed."""
    pred, target = _pair(pred, target)
    aligned = procrustes_align(pred, target)
    return (aligned - target).norm(dim=-1).mean(-1) * M_TO_MM


def accel_error(pred, target) -> torch.Tensor:
    """Acceleration error (mm / frame^2).

    Inputs ``[T, J, 3]`` or ``[B, T, J, 3]`` (time is dim ``-3``).  The
    acceleration is the second finite difference ``x[t+1] - 2 x[t] + x[t-1]``;
    returns the per-joint norm of ``accel(pred) - accel(target)`` averaged over
    joints, shape ``[T-2]`` or ``[B, T-2]``.  Requires ``T >= 3``.
    """
    pred, target = _pair(pred, target)
    if pred.ndim < 3 or pred.shape[-3] < 3:
        raise ValueError(f"accel_error needs [..., T>=3, J, 3], got {tuple(pred.shape)}")

    def acc(x):
        return x[..., 2:, :, :] - 2.0 * x[..., 1:-1, :, :] + x[..., :-2, :, :]

    return (acc(pred) - acc(target)).norm(dim=-1).mean(-1) * M_TO_MM


def compute_pose_metrics(pred, target, sequence: bool = True) -> Dict[str, float]:
    """All four metrics as plain floats (mm): ``mpjpe``, ``pa_mpjpe``, ``pel_mpjpe``, ``accel_error``.

    ``pred``/``target``: ``[..., J, 3]`` in metres.  When ``sequence`` is true,
    dim ``-3`` is interpreted as time for ``accel_error`` (``[T, J, 3]`` or
    ``[B, T, J, 3]``); otherwise, or when fewer than 3 frames exist,
    ``accel_error`` is ``nan``.
    """
    pred, target = _pair(pred, target)
    out = {
        "mpjpe": float(mpjpe(pred, target).mean()),
        "pa_mpjpe": float(pa_mpjpe(pred, target).mean()),
        "pel_mpjpe": float(pel_mpjpe(pred, target).mean()),
        "accel_error": math.nan,
    }
    if sequence and pred.ndim >= 3 and pred.shape[-3] >= 3:
        out["accel_error"] = float(accel_error(pred, target).mean())
    return out
