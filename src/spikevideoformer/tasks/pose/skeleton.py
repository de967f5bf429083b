"""Built-in 24-joint kinematic skeleton with the SMPL joint tree.

This is a licence-free stand-in for the SMPL body model: it has the same joint
order, the same parent tree and accepts the same inputs as SMPL
(``pose_rotmats [..., 24, 3, 3]``, ``betas [..., 10]``, ``transl [..., 3]``),
but it has no mesh and only a very simple shape space.

Coordinate convention (rest pose): metres, ``+y`` up, ``+x`` towards the
subject's **left**, ``+z`` towards the subject's front (SMPL's convention).
The rest pose is a T-pose with the pelvis at the origin, so for the built-in
skeleton ``joints[..., 0, :] == transl`` for every pose.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

__all__ = [
    "NUM_JOINTS",
    "JOINT_NAMES",
    "PARENTS",
    "BONES",
    "LEFT_JOINTS",
    "RIGHT_JOINTS",
    "FLIP_PERM",
    "LIMB_JOINTS",
    "REST_JOINTS",
    "rest_joints",
    "bone_offsets",
    "forward_kinematics",
    "SimpleSkeleton",
]

NUM_JOINTS = 24

JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee",
    "spine2", "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot",
    "neck", "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand",
)

PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)

#: (parent, child) pairs, one per non-root joint (23 bones).
BONES = tuple((p, j) for j, p in enumerate(PARENTS) if p >= 0)

LEFT_JOINTS = tuple(i for i, n in enumerate(JOINT_NAMES) if n.startswith("left_"))
RIGHT_JOINTS = tuple(i for i, n in enumerate(JOINT_NAMES) if n.startswith("right_"))

#: permutation swapping left/right joints (used for horizontal flips)
FLIP_PERM = tuple(
    JOINT_NAMES.index(n.replace("left_", "right_") if n.startswith("left_") else n.replace("right_", "left_"))
    for n in JOINT_NAMES
)

#: joints whose incoming bone belongs to an arm or a leg (scaled by ``betas[..., 1]``)
LIMB_JOINTS = tuple(
    JOINT_NAMES.index(n)
    for n in JOINT_NAMES
    if any(k in n for k in ("knee", "ankle", "foot", "elbow", "wrist", "hand"))
)

# T-pose joint positions (metres), pelvis at the origin; roughly adult
# proportions (about 1.7 m tall including the top of the head), left/right
# symmetric.  Own numbers, not taken from the SMPL model.
REST_JOINTS = (
    (0.000, 0.000, 0.000),    # pelvis
    (0.075, -0.085, 0.000),   # left_hip
    (-0.075, -0.085, 0.000),  # right_hip
    (0.000, 0.110, -0.015),   # spine1
    (0.095, -0.470, 0.005),   # left_knee
    (-0.095, -0.470, 0.005),  # right_knee
    (0.000, 0.240, 0.000),    # spine2
    (0.090, -0.870, -0.035),  # left_ankle
    (-0.090, -0.870, -0.035), # right_ankle
    (0.000, 0.295, 0.010),    # spine3
    (0.110, -0.930, 0.090),   # left_foot
    (-0.110, -0.930, 0.090),  # right_foot
    (0.000, 0.510, -0.020),   # neck
    (0.075, 0.420, -0.010),   # left_collar
    (-0.075, 0.420, -0.010),  # right_collar
    (0.000, 0.600, 0.030),    # head
    (0.175, 0.450, -0.020),   # left_shoulder
    (-0.175, 0.450, -0.020),  # right_shoulder
    (0.430, 0.440, -0.030),   # left_elbow
    (-0.430, 0.440, -0.030),  # right_elbow
    (0.680, 0.450, -0.025),   # left_wrist
    (-0.680, 0.450, -0.025),  # right_wrist
    (0.765, 0.440, -0.030),   # left_hand
    (-0.765, 0.440, -0.030),  # right_hand
)


def rest_joints(dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """The built-in T-pose as a ``[24, 3]`` tensor (metres, pelvis at origin)."""
    return torch.tensor(REST_JOINTS, dtype=dtype, device=device)


def bone_offsets(rest: torch.Tensor) -> torch.Tensor:
    """Per-joint offset from its parent ``[..., 24, 3]`` (the root keeps its position)."""
    parents = torch.tensor([0] + list(PARENTS[1:]), device=rest.device)
    off = rest - rest[..., parents, :]
    off[..., 0, :] = rest[..., 0, :]
    return off


def forward_kinematics(
    local_rotmats: torch.Tensor,
    rest_joints: torch.Tensor,
    root_translation: Optional[torch.Tensor] = None,
    parents=PARENTS,
    return_global_rotmats: bool = False,
):
    """Forward kinematics of a joint tree.

    Args:
        local_rotmats: ``[..., J, 3, 3]`` rotation of each joint relative to its
            parent (``[..., 0]`` is the global root orientation).
        rest_joints: ``[J, 3]`` or ``[..., J, 3]`` rest-pose joint positions.
        root_translation: optional ``[..., 3]`` added to every joint.
        parents: parent index per joint (``-1`` for the root); parents must
            precede their children.

    Returns:
        joints ``[..., J, 3]`` (and the global rotations ``[..., J, 3, 3]`` if
        ``return_global_rotmats``).  The root rotates the body about the rest
        root position, like SMPL: ``joints[0] = rest[0] + transl``.
    """
    J = len(parents)
    if local_rotmats.shape[-3:] != (J, 3, 3):
        raise ValueError(f"local_rotmats must be [..., {J}, 3, 3], got {tuple(local_rotmats.shape)}")
    if rest_joints.shape[-2:] != (J, 3):
        raise ValueError(f"rest_joints must be [..., {J}, 3], got {tuple(rest_joints.shape)}")
    batch = torch.broadcast_shapes(local_rotmats.shape[:-3], rest_joints.shape[:-2])
    rest = rest_joints.to(local_rotmats.dtype)
    rot = local_rotmats.expand(*batch, J, 3, 3)
    rest = rest.expand(*batch, J, 3)
    g_rot = [rot[..., 0, :, :]]
    g_pos = [rest[..., 0, :]]
    for j in range(1, J):
        p = parents[j]
        off = rest[..., j, :] - rest[..., p, :]
        g_pos.append(g_pos[p] + (g_rot[p] @ off[..., None])[..., 0])
        g_rot.append(g_rot[p] @ rot[..., j, :, :])
    joints = torch.stack(g_pos, dim=-2)
    if root_translation is not None:
        joints = joints + root_translation[..., None, :].to(joints.dtype)
    if return_global_rotmats:
        return joints, torch.stack(g_rot, dim=-3)
    return joints


def align_betas(betas: torch.Tensor, lead) -> torch.Tensor:
    """Let ``betas [*P, D]`` broadcast against pose leading dims ``lead``.

    If ``P`` is a proper prefix of ``lead`` (e.g. per-clip betas ``[B, 10]`` with
    per-frame poses ``[B, T, 24, 3, 3]``), singleton dims are inserted after
    it; otherwise ``betas`` is returned unchanged (ordinary broadcasting).
    """
    lead = tuple(lead)
    p = tuple(betas.shape[:-1])
    if 0 < len(p) < len(lead) and lead[: len(p)] == p:
        betas = betas.reshape(*p, *([1] * (len(lead) - len(p))), betas.shape[-1])
    return betas


class SimpleSkeleton(nn.Module):
    """Licence-free SMPL stand-in: ``forward(pose_rotmats, betas, transl) -> joints``.

    Shape model (deliberately simple, documented):

    * ``betas[..., 0]``: global height scale, every bone multiplied by
      ``1 + 0.06 * betas[..., 0]``;
    * ``betas[..., 1]``: limb-length scale, arm and leg bones (knees, ankles,
      feet, elbows, wrists, hands) additionally multiplied by
      ``1 + 0.05 * betas[..., 1]``;
    * ``betas[..., 2:]`` are accepted and ignored.

    Scale factors are clamped to ``[0.5, 1.5]``.  No learnable parameters.
    ``betas`` may have the leading dims of the pose or a prefix of them
    (per-clip ``[B, 10]`` with per-frame poses ``[B, T, 24, 3, 3]``).
    """

    num_joints = NUM_JOINTS
    joint_names = JOINT_NAMES
    parents = PARENTS

    def __init__(self, rest: Optional[torch.Tensor] = None):
        super().__init__()
        rest = rest_joints() if rest is None else torch.as_tensor(rest, dtype=torch.float32)
        self.register_buffer("rest", rest.clone(), persistent=False)
        limb = torch.zeros(NUM_JOINTS)
        limb[list(LIMB_JOINTS)] = 1.0
        self.register_buffer("limb_mask", limb, persistent=False)

    def shaped_rest(self, betas: Optional[torch.Tensor]) -> torch.Tensor:
        """Rest joints ``[..., 24, 3]`` for the given betas (``[24, 3]`` if None)."""
        rest = self.rest
        if betas is None:
            return rest
        betas = betas.to(rest.dtype)
        g = (1.0 + 0.06 * betas[..., 0]).clamp(0.5, 1.5)
        l = (1.0 + 0.05 * betas[..., 1]).clamp(0.5, 1.5) if betas.shape[-1] > 1 else torch.ones_like(g)
        scale = g[..., None] * (1.0 + (l[..., None] - 1.0) * self.limb_mask)  # [..., 24]
        off = bone_offsets(rest) * scale[..., None]
        off[..., 0, :] = rest[0]
        out = [off[..., 0, :]]
        for j in range(1, NUM_JOINTS):
            out.append(out[PARENTS[j]] + off[..., j, :])
        return torch.stack(out, dim=-2)

    def forward(
        self,
        pose_rotmats: torch.Tensor,
        betas: Optional[torch.Tensor] = None,
        transl: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """``pose_rotmats [..., 24, 3, 3]``, ``betas [..., 10]``, ``transl [..., 3]`` -> ``[..., 24, 3]``."""
        pose_rotmats = pose_rotmats.to(self.rest.dtype) if not pose_rotmats.is_floating_point() else pose_rotmats
        if betas is not None:
            betas = align_betas(betas, pose_rotmats.shape[:-3])
        rest = self.shaped_rest(betas).to(pose_rotmats.dtype)
        return forward_kinematics(pose_rotmats, rest, transl)


_MIRROR = (-1.0, 1.0, 1.0)


def mirror_joints(joints: torch.Tensor) -> torch.Tensor:
    """Mirror joint positions ``[..., 24, 3]`` across the ``x = 0`` plane and swap left/right."""
    m = joints.new_tensor(_MIRROR)
    return (joints * m)[..., list(FLIP_PERM), :]


def mirror_rotmats(rotmats: torch.Tensor) -> torch.Tensor:
    """Mirror local rotations ``[..., 24, 3, 3]`` (``M R M`` with ``M = diag(-1, 1, 1)``) and swap left/right.

    For a left/right-symmetric rest skeleton (the built-in one),
    ``FK(mirror_rotmats(R), transl * M) == mirror_joints(FK(R, transl))``.
    """
    m = rotmats.new_tensor(_MIRROR)
    out = rotmats * m[:, None] * m[None, :]
    return out[..., list(FLIP_PERM), :, :]


__all__ += ["mirror_joints", "mirror_rotmats", "align_betas"]
