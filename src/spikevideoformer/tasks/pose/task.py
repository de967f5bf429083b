"""The pose-tracking task object the engine's Trainer drives (forward, loss, evaluate).

Batches are ``(clips [B, T, C, H, W], target)`` with ``target`` a dict of stacked tensors:
``joints [B, T, 24, 3]`` (metres), ``pose_6d [B, T, 24, 6]``, ``betas [B, 10]``,
``transl [B, T, 3]`` and optionally ``has_joints`` / ``has_smpl`` ``[B]`` flags (on-disk data
where a sequence lacks 3-D joints or SMPL parameters; missing flags mean "present").

Loss (weights in :data:`DEFAULT_LOSS_WEIGHTS`, all terms are means)::

    loss = 1.0  · L1(root-relative joints)                 metres, clips with joints
         + 1.0  · L1(Procrustes-aligned joints)             metres, clips with joints; the
                                                            similarity transform is fitted
                                                            without gradient (targets PA-MPJPE)
         + 1.0  · L1(translation)                           metres: SMPL transl for clips with
                                                            SMPL parameters, else pelvis position
         + 0.5  · MSE(6-D rotations)                        first two rotation-matrix columns,
                                                            clips with SMPL parameters
         + 0.01 · MSE(betas)                                clips with SMPL parameters

Metrics (millimetres, averaged over all frames of the validation clips): MPJPE, PA-MPJPE,
PEL-MPJPE, acceleration error (needs T >= 3), and the same for constant mean-pose baselines
that predict one fixed skeleton for every frame, placed at the mean training pelvis position:

* ``baseline_*``: the mean root-relative training pose in the data (camera) frame;
* ``baseline_body_*``: the mean root-relative training pose in the body frame (global root
  orientation removed before averaging; needs SMPL rotations, else equal to the former).
  When headings vary a lot (the synthetic task turns the body through 360 degrees) the
  camera-frame mean collapses the limbs, so this is the stronger reference for PA-MPJPE.

A constant's acceleration error is the ground truth's own acceleration, reported once.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

import torch

from .metrics import accel_error, mpjpe, pa_mpjpe, pel_mpjpe, procrustes_align

__all__ = ["PoseTask", "DEFAULT_LOSS_WEIGHTS", "unpack_pose_batch", "mean_pose_prediction",
           "pose_metric_sums"]

DEFAULT_LOSS_WEIGHTS: Dict[str, float] = {"joints": 1.0, "pa_joints": 1.0, "transl": 1.0, "pose": 0.5,
                                          "betas": 0.01}

METRICS = ("mpjpe", "pa_mpjpe", "pel_mpjpe", "accel_error")


def unpack_pose_batch(batch: Any) -> Tuple[torch.Tensor, Mapping[str, torch.Tensor]]:
    """``(clips, target dict)`` from a batch."""
    if batch is None:
        raise ValueError("empty batch")
    return batch[0], batch[1]


def _flag(target: Mapping[str, torch.Tensor], key: str, n: int, device) -> torch.Tensor:
    f = target.get(key)
    if f is None:
        return torch.ones(n, dtype=torch.bool, device=device)
    return torch.as_tensor(f, device=device).reshape(n).bool()


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x [B, ...]`` over the samples where ``mask [B]`` is true (0 if none)."""
    if bool(mask.all()):
        return x.mean()
    if not bool(mask.any()):
        return x.sum() * 0.0
    return x[mask].mean()


def mean_pose_prediction(mean_joints: torch.Tensor, mean_root: torch.Tensor, shape) -> torch.Tensor:
    """The constant baseline ``[*shape, 24, 3]``: root-relative mean pose + mean pelvis position."""
    pose = mean_joints - mean_joints[..., :1, :] + mean_root.reshape(1, 3)
    return pose.expand(*shape, *pose.shape[-2:])


def pose_metric_sums(pred: torch.Tensor, true: torch.Tensor) -> Dict[str, float]:
    """Sums over frames of the per-frame metrics (mm) of ``[B, T, J, 3]`` inputs, plus counts."""
    out = {"frames": float(pred.shape[0] * pred.shape[1])}
    out["mpjpe"] = float(mpjpe(pred, true).sum())
    out["pa_mpjpe"] = float(pa_mpjpe(pred, true).sum())
    out["pel_mpjpe"] = float(pel_mpjpe(pred, true).sum())
    if pred.shape[1] >= 3:
        acc = accel_error(pred, true)  # [B, T-2]
        out["accel_error"] = float(acc.sum())
        out["accel_frames"] = float(acc.numel())
    return out


class PoseTask:
    """Loss and metrics of 3-D pose tracking (see the module docstring).

    Args:
        loss_weights: overrides of :data:`DEFAULT_LOSS_WEIGHTS` (keys ``joints``, ``pa_joints``,
            ``transl``, ``pose``, ``betas``; 0 switches a term off).
        joint_loss: ``"l1"`` (default) or ``"l2"`` (mean squared error) for the joint term.
        mean_joints: ``[24, 3]`` mean training pose (any root position, data frame) for the
            ``baseline_*`` metrics.
        mean_root: ``[3]`` mean training pelvis position for the baseline (default zeros).
        mean_joints_body: optional ``[24, 3]`` mean training pose in the body frame for the
            ``baseline_body_*`` metrics.
    """

    main_metric = "val_pa_mpjpe"
    higher_is_better = False

    def __init__(self, loss_weights: Optional[Mapping[str, float]] = None, joint_loss: str = "l1",
                 mean_joints: Optional[torch.Tensor] = None,
                 mean_root: Optional[torch.Tensor] = None,
                 mean_joints_body: Optional[torch.Tensor] = None) -> None:
        unknown = set(loss_weights or {}) - set(DEFAULT_LOSS_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown loss weight(s) {sorted(unknown)}; "
                             f"valid: {sorted(DEFAULT_LOSS_WEIGHTS)}")
        if joint_loss not in ("l1", "l2"):
            raise ValueError(f"joint_loss must be 'l1' or 'l2', got {joint_loss!r}")
        self.weights = {**DEFAULT_LOSS_WEIGHTS, **dict(loss_weights or {})}
        self.joint_loss = joint_loss
        self.mean_joints = None if mean_joints is None else torch.as_tensor(mean_joints, dtype=torch.float32)
        self.mean_joints_body = (None if mean_joints_body is None
                                 else torch.as_tensor(mean_joints_body, dtype=torch.float32))
        self.mean_root = (torch.zeros(3) if mean_root is None
                          else torch.as_tensor(mean_root, dtype=torch.float32).reshape(3))
        self.last_example: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
        self.last_baselines: Dict[str, Dict[str, float]] = {}

    @staticmethod
    def _device(model: torch.nn.Module) -> torch.device:
        return next(model.parameters()).device

    def forward(self, model: torch.nn.Module, batch: Any) -> Dict[str, torch.Tensor]:
        clips, _ = unpack_pose_batch(batch)
        return model(clips.to(self._device(model), non_blocking=True))

    def loss(self, output: Mapping[str, torch.Tensor], batch: Any) -> Tuple[torch.Tensor, Dict[str, float]]:
        _, target = unpack_pose_batch(batch)
        dev = output["joints"].device
        tgt = {k: v.to(dev) for k, v in target.items() if isinstance(v, torch.Tensor)}
        B = output["joints"].shape[0]
        has_j = _flag(tgt, "has_joints", B, dev)
        has_s = _flag(tgt, "has_smpl", B, dev)
        pj, tj = output["joints"].float(), tgt["joints"].float()
        rel_p, rel_t = pj - pj[:, :, :1], tj - tj[:, :, :1]
        diff = rel_p - rel_t
        jl = diff.abs() if self.joint_loss == "l1" else diff.square()
        terms = {"joints": _masked_mean(jl, has_j)}
        if self.weights["pa_joints"]:
            pa = procrustes_align(pj, tj, differentiable=True) - tj
            terms["pa_joints"] = _masked_mean(pa.abs() if self.joint_loss == "l1" else pa.square(), has_j)
        # translation: SMPL transl where given, else the pelvis position from the joints
        tr_smpl = (output["transl"].float() - tgt["transl"].float()).abs()
        tr_root = (pj[:, :, 0] - tj[:, :, 0]).abs()
        tr = torch.where(has_s[:, None, None], tr_smpl, tr_root)
        terms["transl"] = _masked_mean(tr, has_s | has_j)
        terms["pose"] = _masked_mean((output["pose_6d"].float() - tgt["pose_6d"].float()).square(), has_s)
        terms["betas"] = _masked_mean((output["betas"].float() - tgt["betas"].float()).square(), has_s)
        loss = sum(self.weights[k] * v for k, v in terms.items() if self.weights[k])
        with torch.no_grad():
            metrics = {f"loss_{k}": float(v) for k, v in terms.items()}
            if bool(has_j.any()):
                metrics["mpjpe_rel"] = float(pel_mpjpe(pj[has_j], tj[has_j]).mean())
        return loss, metrics

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, loader: Any) -> Dict[str, float]:
        """MPJPE / PA-MPJPE / PEL-MPJPE / accel error (mm) of the model and the mean-pose
        baseline over the loader (clips without 3-D joints are skipped)."""
        sums: Dict[str, float] = {}
        consts = {name: m for name, m in (("world", self.mean_joints), ("body", self.mean_joints_body))
                  if m is not None}
        base: Dict[str, Dict[str, float]] = {name: {} for name in consts}
        n = 0
        self.last_example = None
        for batch in loader:
            if batch is None:
                continue
            clips, target = unpack_pose_batch(batch)
            true = target["joints"].float()
            keep = _flag(target, "has_joints", true.shape[0], "cpu")
            if not bool(keep.any()):
                continue
            pred = self.forward(model, (clips, target))["joints"].float().cpu()
            pred, true = pred[keep], true[keep]
            for k, v in pose_metric_sums(pred, true).items():
                sums[k] = sums.get(k, 0.0) + v
            for name, mean in consts.items():
                bp = mean_pose_prediction(mean, self.mean_root, true.shape[:2])
                for k, v in pose_metric_sums(bp, true).items():
                    base[name][k] = base[name].get(k, 0.0) + v
            if self.last_example is None:
                self.last_example = (pred[0].clone(), true[0].clone())
            n += int(true.shape[0])
        if n == 0:
            raise ValueError("validation loader produced no clips with 3-D joints")
        out = _finish(sums)
        per = {name: _finish(b) for name, b in base.items()}
        self.last_baselines = per
        for name, m in per.items():
            prefix = "baseline_" if name == "world" else f"baseline_{name}_"
            out.update({prefix + k: v for k, v in m.items()
                        if name == "world" or k != "accel_error"})
        out["num_samples"] = n
        return out


def _finish(sums: Mapping[str, float]) -> Dict[str, float]:
    if not sums:
        return {}
    out = {k: sums[k] / sums["frames"] for k in ("mpjpe", "pa_mpjpe", "pel_mpjpe")}
    if sums.get("accel_frames"):
        out["accel_error"] = sums["accel_error"] / sums["accel_frames"]
    return out
