import math

import pytest
import torch

from spikevideoformer.tasks.pose.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    matrix_to_rot6d,
    quaternion_to_matrix,
    rot6d_to_matrix,
)


def _random_rotations(n, gen, dtype=torch.float64):
    q = torch.randn(n, 4, generator=gen, dtype=dtype)
    return quaternion_to_matrix(q)


def _random_aa(n, gen, lo=1e-3, hi=math.pi - 1e-3, dtype=torch.float64):
    axis = torch.randn(n, 3, generator=gen, dtype=dtype)
    axis = axis / axis.norm(dim=-1, keepdim=True)
    ang = lo + (hi - lo) * torch.rand(n, 1, generator=gen, dtype=dtype)
    return axis * ang


def test_matrix_6d_roundtrip():
    g = torch.Generator().manual_seed(0)
    R = _random_rotations(1000, g).float().reshape(10, 100, 3, 3)
    r6 = matrix_to_rot6d(R)
    assert r6.shape == (10, 100, 6)
    # convention: first two columns
    assert torch.equal(r6[..., :3], R[..., :, 0]) and torch.equal(r6[..., 3:], R[..., :, 1])
    assert torch.allclose(rot6d_to_matrix(r6), R, atol=1e-5)


def test_rot6d_output_is_rotation():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 500, 6, generator=g) * 3
    R = rot6d_to_matrix(x)
    eye = torch.eye(3).expand_as(R)
    assert torch.allclose(R.transpose(-1, -2) @ R, eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(R), torch.ones(4, 500), atol=1e-5)
    # first column is the normalised first 3-vector
    assert torch.allclose(R[..., :, 0], x[..., :3] / x[..., :3].norm(dim=-1, keepdim=True), atol=1e-6)


def test_rot6d_gradients_finite():
    x = torch.randn(64, 6, requires_grad=True)
    rot6d_to_matrix(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_axis_angle_roundtrip():
    g = torch.Generator().manual_seed(2)
    aa = _random_aa(2000, g)
    R = axis_angle_to_matrix(aa)
    assert torch.allclose(matrix_to_axis_angle(R), aa, atol=1e-6)
    aa32 = aa.float()
    assert torch.allclose(matrix_to_axis_angle(axis_angle_to_matrix(aa32)), aa32, atol=1e-4)


def test_matrix_aa_matrix_roundtrip_random_rotations():
    g = torch.Generator().manual_seed(3)
    R = _random_rotations(2000, g)
    assert torch.allclose(axis_angle_to_matrix(matrix_to_axis_angle(R)), R, atol=1e-9)


def test_near_zero_and_near_pi():
    # near zero: stable and accurate
    aa = torch.tensor([[0.0, 0.0, 0.0], [1e-9, -2e-9, 3e-9], [1e-5, 0.0, 0.0]], dtype=torch.float64)
    R = axis_angle_to_matrix(aa)
    assert torch.isfinite(R).all()
    assert torch.allclose(matrix_to_axis_angle(R), aa, atol=1e-12)
    # gradients at exactly zero are finite
    z = torch.zeros(2, 3, requires_grad=True)
    axis_angle_to_matrix(z).sum().backward()
    assert torch.isfinite(z.grad).all()
    # near pi: the matrix round trip is exact (the axis sign at exactly pi is arbitrary)
    g = torch.Generator().manual_seed(4)
    axis = torch.randn(500, 3, generator=g, dtype=torch.float64)
    axis = axis / axis.norm(dim=-1, keepdim=True)
    for ang in (math.pi, math.pi - 1e-7, math.pi - 1e-4):
        R = axis_angle_to_matrix(axis * ang)
        aa2 = matrix_to_axis_angle(R)
        assert torch.allclose(aa2.norm(dim=-1), torch.full((500,), ang, dtype=torch.float64), atol=1e-6)
        assert torch.allclose(axis_angle_to_matrix(aa2), R, atol=1e-9)
    R = axis_angle_to_matrix(axis * (math.pi - 1e-4))
    assert torch.allclose(matrix_to_axis_angle(R), axis * (math.pi - 1e-4), atol=1e-6)


def test_known_90_deg_about_z():
    aa = torch.tensor([0.0, 0.0, math.pi / 2])
    R = axis_angle_to_matrix(aa)
    expected = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert torch.allclose(R, expected, atol=1e-6)
    assert torch.allclose(R @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
    assert torch.allclose(matrix_to_axis_angle(expected), aa, atol=1e-6)
    assert torch.allclose(matrix_to_rot6d(expected), torch.tensor([0.0, 1.0, 0.0, -1.0, 0.0, 0.0]))
    q = matrix_to_quaternion(expected)
    s = math.sqrt(0.5)
    assert torch.allclose(q, torch.tensor([s, 0.0, 0.0, s]), atol=1e-6)
    # 180 deg about x
    Rx = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
    assert torch.allclose(matrix_to_axis_angle(Rx).abs(), torch.tensor([math.pi, 0.0, 0.0]), atol=1e-6)


def test_shape_errors():
    with pytest.raises(ValueError):
        rot6d_to_matrix(torch.zeros(3, 5))
    with pytest.raises(ValueError):
        axis_angle_to_matrix(torch.zeros(3, 4))
