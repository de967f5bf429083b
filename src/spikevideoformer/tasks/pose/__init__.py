"""3-D human pose tracking task: rotations, skeleton / SMPL body models, metrics, data,
the pose model (backbone + spike-driven temporal head), the task object and the runner.

Backbone-independent building blocks; see ``docs/pose_data_format.md`` for the
on-disk format, ``docs/pose.md`` for the task and the module docstrings for coordinate
conventions. The model, task and runner are imported lazily (they need the backbone and the
training engine).
"""
from .rotations import (
    axis_angle_to_matrix,
    axis_angle_to_rot6d,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    matrix_to_rot6d,
    quaternion_to_axis_angle,
    quaternion_to_matrix,
    rot6d_to_axis_angle,
    rot6d_to_matrix,
)
from .skeleton import (
    BONES,
    FLIP_PERM,
    JOINT_NAMES,
    NUM_JOINTS,
    PARENTS,
    SimpleSkeleton,
    forward_kinematics,
    mirror_joints,
    mirror_rotmats,
    rest_joints,
)
from .smpl import SMPL_HELP, SMPLJoints, load_body_model
from .metrics import accel_error, compute_pose_metrics, mpjpe, pa_mpjpe, pel_mpjpe, procrustes_align
from .synthetic import SyntheticPoseVideos
from .dataset import PoseSequenceDataset, load_annotations, read_image, resize_clip
from .render import plot_skeleton_sequence, render_skeleton_frames

_LAZY = {
    "PoseSpikeVideoFormer": ".head",
    "PoseTask": ".task",
    "DEFAULT_LOSS_WEIGHTS": ".task",
    "build_pose_model": ".runner",
    "build_pose_data": ".data",
    "train_pose": ".runner",
    "evaluate_pose": ".runner",
    "run_pose_demo": ".demo",
}

__all__ = [
    "axis_angle_to_matrix", "axis_angle_to_rot6d", "matrix_to_axis_angle", "matrix_to_quaternion",
    "matrix_to_rot6d", "quaternion_to_axis_angle", "quaternion_to_matrix", "rot6d_to_axis_angle",
    "rot6d_to_matrix",
    "BONES", "FLIP_PERM", "JOINT_NAMES", "NUM_JOINTS", "PARENTS", "SimpleSkeleton",
    "forward_kinematics", "mirror_joints", "mirror_rotmats", "rest_joints",
    "SMPL_HELP", "SMPLJoints", "load_body_model",
    "accel_error", "compute_pose_metrics", "mpjpe", "pa_mpjpe", "pel_mpjpe", "procrustes_align",
    "SyntheticPoseVideos", "PoseSequenceDataset", "load_annotations", "read_image", "resize_clip",
    "plot_skeleton_sequence", "render_skeleton_frames",
    *_LAZY,
]


def __getattr__(name):
    if name in _LAZY:
        import importlib
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
