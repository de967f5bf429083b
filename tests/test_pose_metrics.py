import math

import torch

from spikevideoformer.tasks.pose.metrics import (
    accel_error,
    compute_pose_metrics,
    mpjpe,
    pa_mpjpe,
    pel_mpjpe,
    procrustes_align,
)
from spikevideoformer.tasks.pose.rotations import axis_angle_to_matrix


def _pose(n=4, j=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, j, 3, generator=g, dtype=torch.float64) * 0.3


def test_identical_is_zero():
    x = _pose()
    m = compute_pose_metrics(x[None], x[None])
    for k in ("mpjpe", "pa_mpjpe", "pel_mpjpe", "accel_error"):
        assert abs(m[k]) < 1e-6, k
    assert set(m) == {"mpjpe", "pa_mpjpe", "pel_mpjpe", "accel_error"}


def test_constant_offset():
    x = _pose()
    y = x + torch.tensor([0.006, 0.0, 0.008], dtype=torch.float64)  # 10 mm
    assert torch.allclose(mpjpe(y, x), torch.full((4,), 10.0, dtype=torch.float64))
    assert pel_mpjpe(y, x).abs().max() < 1e-9
    assert pa_mpjpe(y, x).abs().max() < 1e-6
    m = compute_pose_metrics(y, x)
    assert abs(m["mpjpe"] - 10.0) < 1e-9 and abs(m["pel_mpjpe"]) < 1e-9
    assert abs(m["accel_error"]) < 1e-9


def test_similarity_removed_by_pa():
    x = _pose(8, seed=1)
    g = torch.Generator().manual_seed(5)
    R = axis_angle_to_matrix(torch.randn(8, 3, generator=g, dtype=torch.float64))
    s = torch.rand(8, generator=g, dtype=torch.float64) + 0.5
    t = torch.randn(8, 1, 3, generator=g, dtype=torch.float64)
    y = s[:, None, None] * x @ R.transpose(-1, -2) + t
    assert pa_mpjpe(y, x).max() <= 1e-3
    assert pa_mpjpe(x, y).max() <= 1e-3
    assert mpjpe(y, x).min() > 10.0
    assert torch.allclose(procrustes_align(y, x), x, atol=1e-9)


def test_differentiable_alignment_is_the_same_transform_with_gradient():
    """``differentiable=True`` (the PA loss) fits the same float64 transform without gradient
    and applies it to ``pred`` in its dtype, so gradients reach ``pred``."""
    x = _pose(6, seed=2)
    pred = (x * 1.3 + 0.1).float().requires_grad_()
    aligned = procrustes_align(pred, x, differentiable=True)
    assert aligned.dtype == torch.float32 and aligned.requires_grad
    torch.testing.assert_close(aligned.double(), procrustes_align(pred, x), rtol=0, atol=1e-6)
    aligned.sum().backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    assert not procrustes_align(pred, x).requires_grad  # the metric version is detached


def test_hand_computed_case():
    target = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    pred = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.004]])
    # errors 0, 0, 4 mm -> mean 4/3 mm
    assert abs(float(mpjpe(pred, target)) - 4.0 / 3.0) < 1e-4
    # pelvis is joint 0 which has no error -> same as MPJPE
    assert abs(float(pel_mpjpe(pred, target)) - 4.0 / 3.0) < 1e-4
    pred2 = pred + torch.tensor([0.003, 0.0, 0.0])  # pelvis now off by 3 mm
    # MPJPE: errors 3, 3, 5 mm -> 11/3
    assert abs(float(mpjpe(pred2, target)) - 11.0 / 3.0) < 1e-4
    assert abs(float(pel_mpjpe(pred2, target)) - 4.0 / 3.0) < 1e-4
    # PA can only reduce the error
    assert float(pa_mpjpe(pred2, target)) <= float(mpjpe(pred2, target))
    # numpy inputs are accepted
    assert abs(float(mpjpe(pred.numpy(), target.numpy())) - 4.0 / 3.0) < 1e-4


def test_reflection_not_removed():
    x = _pose(6, seed=2)
    y = x * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)  # mirror image (det -1)
    err = pa_mpjpe(y, x)
    assert (err > 1.0).all()
    # a proper rotation is still fully removed
    R = axis_angle_to_matrix(torch.tensor([0.0, math.pi, 0.0], dtype=torch.float64))
    assert pa_mpjpe(x @ R.T, x).max() < 1e-6


def test_accel_error_linear_and_quadratic():
    T = 10
    t = torch.arange(T, dtype=torch.float64)
    base = _pose(1, seed=3)[0]  # [J, 3]
    vel = torch.tensor([0.01, -0.02, 0.005], dtype=torch.float64)
    linear = base[None] + t[:, None, None] * vel
    still = base[None].expand(T, -1, -1)
    assert accel_error(linear, still).abs().max() < 1e-9
    a = torch.tensor([0.001, 0.0, 0.0], dtype=torch.float64)  # x = a t^2 -> accel 2a = 2 mm
    quad = base[None] + (t ** 2)[:, None, None] * a
    err = accel_error(quad, still)
    assert err.shape == (T - 2,)
    assert torch.allclose(err, torch.full((T - 2,), 2.0, dtype=torch.float64))
    # batched [B, T, J, 3]
    errb = accel_error(torch.stack([quad, linear]), torch.stack([still, still]))
    assert errb.shape == (2, T - 2)
    assert torch.allclose(errb[0], torch.full((T - 2,), 2.0, dtype=torch.float64))
    assert errb[1].abs().max() < 1e-9
    m = compute_pose_metrics(quad[None], still[None])
    assert abs(m["accel_error"] - 2.0) < 1e-9


def test_compute_metrics_non_sequence():
    x = _pose(2)
    m = compute_pose_metrics(x, x + 0.001, sequence=False)
    assert math.isnan(m["accel_error"])
    assert abs(m["mpjpe"] - math.sqrt(3.0)) < 1e-6
    assert all(isinstance(v, float) for v in m.values())
