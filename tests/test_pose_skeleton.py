import sys

import pytest
import torch

from spikevideoformer.tasks.pose import (
    BONES,
    JOINT_NAMES,
    PARENTS,
    SimpleSkeleton,
    forward_kinematics,
    load_body_model,
    mirror_joints,
    mirror_rotmats,
    rest_joints,
)
from spikevideoformer.tasks.pose.rotations import axis_angle_to_matrix, quaternion_to_matrix
from spikevideoformer.tasks.pose.smpl import SMPLJoints


def _rand_pose(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return quaternion_to_matrix(torch.randn(*shape, 24, 4, generator=g, dtype=torch.float64))


def test_tree_definition():
    assert len(JOINT_NAMES) == 24 and JOINT_NAMES[0] == "pelvis" and JOINT_NAMES[23] == "right_hand"
    assert list(PARENTS) == [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
    rest = rest_joints()
    assert rest.shape == (24, 3)
    # y up, head above pelvis above feet, left is +x
    assert rest[15, 1] > rest[0, 1] > rest[10, 1]
    assert rest[JOINT_NAMES.index("left_wrist"), 0] > 0 > rest[JOINT_NAMES.index("right_wrist"), 0]
    height = rest[15, 1] - rest[10:12, 1].min()
    assert 1.3 < float(height) < 1.8


def test_zero_pose_gives_rest_plus_translation():
    rest = rest_joints(torch.float64)
    eye = torch.eye(3, dtype=torch.float64).expand(5, 24, 3, 3)
    transl = torch.randn(5, 3, dtype=torch.float64)
    j = forward_kinematics(eye, rest, transl)
    assert torch.allclose(j, rest + transl[:, None], atol=1e-12)
    model = SimpleSkeleton()
    j2 = model(eye.float(), torch.zeros(5, 10), transl.float())
    assert torch.allclose(j2, (rest + transl[:, None]).float(), atol=1e-6)


def test_root_rotation_rotates_about_pelvis():
    rest = rest_joints(torch.float64)
    pose = _rand_pose((3,), seed=1)
    R = axis_angle_to_matrix(torch.tensor([0.3, -1.2, 0.7], dtype=torch.float64))
    j = forward_kinematics(pose, rest)
    pose2 = pose.clone()
    pose2[:, 0] = R @ pose[:, 0]
    j2 = forward_kinematics(pose2, rest)
    pelvis = j[:, :1]
    expected = (j - pelvis) @ R.T + pelvis
    assert torch.allclose(j2, expected, atol=1e-10)


def test_bone_lengths_preserved():
    rest = rest_joints(torch.float64)
    pose = _rand_pose((4, 7), seed=2)
    j = forward_kinematics(pose, rest, torch.randn(4, 7, 3, dtype=torch.float64))
    assert j.shape == (4, 7, 24, 3)
    for p, c in BONES:
        L0 = (rest[c] - rest[p]).norm()
        L = (j[..., c, :] - j[..., p, :]).norm(dim=-1)
        assert torch.allclose(L, L0.expand_as(L), atol=1e-10)


def test_betas_scale_bones():
    model = SimpleSkeleton().double()
    eye = torch.eye(3, dtype=torch.float64).expand(24, 3, 3)
    b = torch.zeros(10, dtype=torch.float64)
    j0 = model(eye, b, None)
    b[0] = 1.0
    j1 = model(eye, b, None)
    assert torch.allclose(j1, j0 * 1.06, atol=1e-12)  # pelvis at origin -> pure scaling
    b = torch.zeros(10, dtype=torch.float64)
    b[1] = 2.0
    j2 = model(eye, b, None)
    knee, hip, neck = JOINT_NAMES.index("left_knee"), JOINT_NAMES.index("left_hip"), 12
    assert torch.allclose((j2[knee] - j2[hip]).norm(), (j0[knee] - j0[hip]).norm() * 1.1)
    assert torch.allclose(j2[neck], j0[neck])  # torso unaffected
    b[5] = 3.0  # ignored
    assert torch.allclose(model(eye, b, None), j2)
    # batched betas with batched pose
    pose = _rand_pose((2, 3), seed=3)
    out = model(pose, torch.randn(2, 1, 10, dtype=torch.float64), torch.zeros(2, 3, 3, dtype=torch.float64))
    assert out.shape == (2, 3, 24, 3)
    assert len(list(model.parameters())) == 0


def test_mirror_consistency():
    model = SimpleSkeleton().double()
    pose = _rand_pose((5,), seed=4)
    transl = torch.randn(5, 3, dtype=torch.float64)
    betas = torch.randn(5, 10, dtype=torch.float64)
    j = model(pose, betas, transl)
    jm = model(mirror_rotmats(pose), betas, transl * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
    assert torch.allclose(jm, mirror_joints(j), atol=1e-10)


def test_load_body_model_skeleton():
    m = load_body_model("skeleton")
    out = m(torch.eye(3).expand(2, 8, 24, 3, 3), torch.zeros(2, 10), torch.zeros(2, 8, 3))
    assert out.shape == (2, 8, 24, 3)
    with pytest.raises(ValueError):
        load_body_model("mano")


def test_smpl_missing_file_message(tmp_path):
    for path in (None, str(tmp_path / "nope" / "SMPL_NEUTRAL.pkl"), str(tmp_path)):
        with pytest.raises(FileNotFoundError) as e:
            load_body_model("smpl", smpl_model_path=path)
        msg = str(e.value)
        assert "https://smpl.is.tue.mpg.de" in msg
        assert "licensed" in msg
        assert "--smpl-model" in msg and "SMPL_NEUTRAL.pkl" in msg


def test_smpl_missing_smplx(tmp_path, monkeypatch):
    f = tmp_path / "SMPL_NEUTRAL.pkl"
    f.write_bytes(b"not really a model")
    monkeypatch.setitem(sys.modules, "smplx", None)  # makes `import smplx` raise ImportError
    with pytest.raises(ImportError, match="pip install smplx"):
        load_body_model("smpl", smpl_model_path=str(f))


def test_smpl_wrapper_with_fake_smplx(tmp_path, monkeypatch):
    """The wrapper passes rotation matrices to smplx and keeps the first 24 joints."""
    import types

    d = tmp_path / "models" / "smpl"
    d.mkdir(parents=True)
    (d / "SMPL_NEUTRAL.pkl").write_bytes(b"x")
    seen = {}

    class FakeSMPL(torch.nn.Module):
        def forward(self, global_orient, body_pose, betas, transl, pose2rot, return_verts):
            seen.update(go=global_orient.shape, bp=body_pose.shape, b=betas.shape, p2r=pose2rot)
            B = global_orient.shape[0]
            joints = torch.zeros(B, 45, 3)
            joints[:, :24] = transl[:, None] + global_orient[:, 0, :, 0][:, None]
            return types.SimpleNamespace(joints=joints)

    fake = types.ModuleType("smplx")
    fake.create = lambda path, **kw: seen.setdefault("create", (path, kw)) and FakeSMPL()
    monkeypatch.setitem(sys.modules, "smplx", fake)
    m = load_body_model("smpl", smpl_model_path=str(tmp_path / "models"))
    assert isinstance(m, SMPLJoints)
    assert seen["create"][1]["model_type"] == "smpl" and seen["create"][1]["gender"] == "neutral"
    pose = torch.eye(3).expand(2, 3, 24, 3, 3)
    out = m(pose, torch.zeros(2, 3, 10), torch.ones(2, 3, 3))
    assert out.shape == (2, 3, 24, 3)
    assert seen["go"] == (6, 1, 3, 3) and seen["bp"] == (6, 23, 3, 3) and seen["p2r"] is False
    assert torch.allclose(out, torch.tensor([2.0, 1.0, 1.0]).expand(2, 3, 24, 3))
    # per-clip betas [B, 10] with per-frame poses, and defaults for betas / transl
    out = m(pose.double(), torch.zeros(2, 10))
    assert out.shape == (2, 3, 24, 3) and out.dtype == torch.float64 and seen["b"] == (6, 10)
