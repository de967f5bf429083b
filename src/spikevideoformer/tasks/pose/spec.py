"""The pose entry of the task table (:mod:`..registry`)."""
from __future__ import annotations

from pathlib import Path

from ..common import write_json
from ..datasets import TaskData
from ..registry import TaskSpec
from .data import build_pose_data, training_pose_stats
from .render import plot_skeleton_sequence
from .runner import META_FILE, body_model_for, build_pose_model, evaluate_pose, pose_meta
from .task import PoseTask

__all__ = ["PoseSpec", "SPEC"]


class PoseSpec(TaskSpec):
    """3-D human pose tracking; option ``smpl_model``: the SMPL file (default: skeleton)."""

    name = "pose"
    options = ("smpl_model",)

    def build_data(self, cfg, smpl_model=None) -> TaskData:
        """Body model, datasets and the training means (mean-pose baseline, output bias)."""
        body = body_model_for(smpl_model)
        train, val, collate = build_pose_data(cfg.data, cfg.run.seed, body_model=body)
        stats = training_pose_stats(train, seed=cfg.run.seed)
        return TaskData(train, val, collate=collate,
                        extras={"body": body, "stats": stats, "smpl_model": smpl_model})

    def build_model(self, cfg, data=None, smpl_model=None):
        body = data.extras["body"] if data is not None else None
        return build_pose_model(cfg, smpl_model, body_model=body)

    def prepare(self, model, cfg, data):
        stats = data.extras["stats"]
        model.init_output_bias(betas=stats["mean_betas"], transl=stats["mean_transl"])
        return cfg

    def make_task(self, cfg, data) -> PoseTask:
        stats = data.extras["stats"]
        return PoseTask(mean_joints=stats["mean_joints"], mean_root=stats["mean_root"],
                        mean_joints_body=stats["mean_joints_body"])

    def on_start(self, trainer, task, data) -> None:
        if trainer.is_main:
            meta = pose_meta(data.extras["stats"], data.extras["smpl_model"], task)
            write_json(obj=meta, path=Path(trainer.cfg.run.out_dir) / META_FILE)

    def on_end(self, trainer, task, data) -> None:
        if trainer.is_main and task.last_example is not None:
            pred, true = task.last_example
            plot_skeleton_sequence(pred, true, str(Path(trainer.cfg.run.out_dir) / "skeletons.png"),
                                   title=f"validation clip, epoch {trainer.epoch}")

    def evaluate(self, checkpoint, out_dir=None, *, print_table=False, overrides=None,
                 smpl_model=None) -> dict:
        if overrides:
            raise ValueError(f"data overrides {sorted(overrides)} apply to classification "
                             f"evaluation only, not to the pose task")
        return evaluate_pose(checkpoint, out_dir, print_table=print_table, smpl_model=smpl_model)

    def demo(self, out=None, modality="rgb", quick=False, compare=False, overrides=(),
             progress=True) -> int:
        from .demo import run_pose_demo
        return run_pose_demo(out, modality, quick, compare, overrides, progress)


SPEC = PoseSpec()
