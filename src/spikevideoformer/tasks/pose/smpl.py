"""Body models for the pose task: the built-in skeleton or (optionally) SMPL.

Both models share one call signature::

    joints = model(pose_rotmats, betas, transl)
    # pose_rotmats [..., 24, 3, 3] local joint rotations (index 0 = global orient)
    # betas        [..., 10]
    # transl       [..., 3]
    # joints       [..., 24, 3]  metres

The SMPL model files are licensed and are never shipped or downloaded by this
library; see :data:`SMPL_HELP`.
"""
from __future__ import annotations

import os
from typing import Optional

import torch
from torch import nn

from .skeleton import NUM_JOINTS, SimpleSkeleton, align_betas

__all__ = ["load_body_model", "SMPLJoints", "SMPL_HELP"]

SMPL_HELP = (
    "The SMPL body model files are licensed and are not shipped with spikevideoformer "
    "(and are never downloaded automatically). To use kind='smpl': register at "
    "https://smpl.is.tue.mpg.de, download 'SMPL for Python' and extract e.g. "
    "SMPL_NEUTRAL.pkl (or SMPL_MALE.pkl / SMPL_FEMALE.pkl). Then pass "
    "`--smpl-model /path/to/SMPL_NEUTRAL.pkl` (smpl_model_path=...) or a folder that "
    "contains `smpl/SMPL_NEUTRAL.pkl`. Without SMPL files use kind='skeleton' "
    "(the built-in licence-free 24-joint skeleton)."
)


class SMPLJoints(nn.Module):
    """Wrap an ``smplx`` SMPL model so that it maps rotation matrices to 24 joints."""

    def __init__(self, smpl_model: nn.Module):
        super().__init__()
        self.smpl = smpl_model
        self.num_joints = NUM_JOINTS

    def forward(
        self,
        pose_rotmats: torch.Tensor,
        betas: Optional[torch.Tensor] = None,
        transl: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        if pose_rotmats.shape[-3:] != (NUM_JOINTS, 3, 3):
            raise ValueError(f"pose_rotmats must be [..., 24, 3, 3], got {tuple(pose_rotmats.shape)}")
        lead = pose_rotmats.shape[:-3]
        B = 1
        for s in lead:
            B *= int(s)
        buf = next((b for b in self.smpl.buffers() if b.is_floating_point()), None)
        dtype = buf.dtype if buf is not None else pose_rotmats.dtype
        rot = pose_rotmats.reshape(B, NUM_JOINTS, 3, 3).to(dtype)
        kwargs = dict(
            global_orient=rot[:, :1],
            body_pose=rot[:, 1:],
            pose2rot=False,
            return_verts=False,
        )
        if betas is None:
            betas = rot.new_zeros(10)
        betas = align_betas(betas.to(rot.dtype), lead)
        kwargs["betas"] = betas.expand(*lead, betas.shape[-1]).reshape(B, -1)
        if transl is None:
            transl = rot.new_zeros(3)
        kwargs["transl"] = transl.to(rot.dtype).expand(*lead, 3).reshape(B, 3)
        out = self.smpl(**kwargs)
        joints = out.joints if hasattr(out, "joints") else out["joints"]
        return joints[:, :NUM_JOINTS].reshape(*lead, NUM_JOINTS, 3).to(pose_rotmats.dtype)


def load_body_model(
    kind: str = "skeleton",
    smpl_model_path: Optional[str] = None,
    gender: str = "neutral",
) -> nn.Module:
    """Return a body model ``model(pose_rotmats, betas, transl) -> joints [..., 24, 3]``.

    Args:
        kind: ``"skeleton"`` (built-in :class:`SimpleSkeleton`, always
            available) or ``"smpl"`` (needs the optional ``smplx`` package and
            the licensed SMPL model files).
        smpl_model_path: for ``"smpl"``: a ``.pkl``/``.npz`` model file or a
            folder containing ``smpl/SMPL_<GENDER>.pkl``.
        gender: ``"neutral"``, ``"male"`` or ``"female"`` (SMPL only).

    Raises:
        FileNotFoundError: SMPL requested but no model file at the given path.
        ImportError: SMPL requested but ``smplx`` is not installed.
    """
    kind = kind.lower()
    if kind in ("skeleton", "simple", "builtin"):
        return SimpleSkeleton()
    if kind != "smpl":
        raise ValueError(f"unknown body model kind {kind!r}; use 'skeleton' or 'smpl'")
    if gender not in ("neutral", "male", "female"):
        raise ValueError(f"gender must be neutral/male/female, got {gender!r}")
    if smpl_model_path is None:
        raise FileNotFoundError("No SMPL model path given. " + SMPL_HELP)
    path = os.path.expanduser(str(smpl_model_path))
    if not os.path.exists(path):
        raise FileNotFoundError(f"SMPL model not found at {path!r}. " + SMPL_HELP)
    if os.path.isdir(path):
        fname = f"SMPL_{gender.upper()}"
        cands = [os.path.join(path, "smpl", fname + ext) for ext in (".pkl", ".npz")]
        if not any(os.path.isfile(c) for c in cands):
            raise FileNotFoundError(
                f"Folder {path!r} does not contain smpl/{fname}.pkl. " + SMPL_HELP
            )
    try:
        import smplx  # noqa: WPS433 (optional dependency)
    except ImportError as e:  # pragma: no cover - exercised via monkeypatch in tests
        raise ImportError(
            "kind='smpl' needs the optional 'smplx' package: pip install smplx "
            "(and the licensed SMPL model files). " + SMPL_HELP
        ) from e
    # a folder must contain smpl/SMPL_<GENDER>.pkl; a file path is used directly
    model = smplx.create(path, model_type="smpl", gender=gender, batch_size=1)
    for p in model.parameters():
        p.requires_grad_(False)
    return SMPLJoints(model)
