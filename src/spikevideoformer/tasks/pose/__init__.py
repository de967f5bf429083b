"""3-D human pose tracking task: rotations, skeleton / SMPL body models, metrics, data.

Backbone-independent building blocks; see ``docs/pose_data_format.md`` for the
on-disk format and the module docstrings for coordinate conventions.
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
]
