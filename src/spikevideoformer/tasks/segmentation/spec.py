"""The segmentation entry of the task table (:mod:`..registry`)."""
from __future__ import annotations

import copy

from ..datasets import TaskData, build_dataset
from ..registry import TaskSpec
from .data import class_frequencies
from .runner import build_segmentation_model, evaluate_segmentation, init_backbone, vc_windows_for
from .task import SegmentationTask

__all__ = ["SegmentationSpec", "SPEC"]


class SegmentationSpec(TaskSpec):
    """Video semantic segmentation: mIoU, mVC; class-prior and backbone initialisation."""

    name = "segmentation"

    def build_data(self, cfg) -> TaskData:
        return build_dataset("segmentation", cfg.data, num_classes=cfg.model.num_classes,
                             seed=cfg.run.seed)

    def build_model(self, cfg, data=None):
        return build_segmentation_model(cfg)

    def prepare(self, model, cfg, data):
        """Classifier bias from the training label prior (a checkpoint loaded later overrides
        it); ``model.init`` with backbone weights loaded into the backbone here."""
        freq = class_frequencies(data.train, cfg.model.num_classes)
        if freq.sum() > 0:
            model.init_class_prior(freq)
        report = data.extras["backbone_report"] = init_backbone(model, cfg)
        if report is None:
            return cfg
        start_cfg = copy.deepcopy(cfg)  # already loaded into the backbone: the Trainer must not retry
        start_cfg.model.init = None
        return start_cfg

    def make_task(self, cfg, data) -> SegmentationTask:
        return SegmentationTask(cfg.model.num_classes, vc_windows=vc_windows_for(cfg),
                                class_names=data.classes, vc_definition=cfg.data.vc_definition)

    def on_start(self, trainer, task, data) -> None:
        report = data.extras.get("backbone_report")
        if report is not None and trainer.is_main:
            print(f"backbone initialised from {trainer.cfg.model.init}:\n{report}")

    def evaluate(self, checkpoint, out_dir=None, *, print_table=False, overrides=None) -> dict:
        if overrides:
            raise ValueError(f"data overrides {sorted(overrides)} apply to classification "
                             f"evaluation only, not to the segmentation task")
        return evaluate_segmentation(checkpoint, out_dir, print_table=print_table)

    def demo(self, out=None, modality="rgb", quick=False, compare=False, overrides=(),
             progress=True) -> int:
        from .demo import run_segmentation_demo
        return run_segmentation_demo(out, modality, quick, compare, overrides, progress)


SPEC = SegmentationSpec()
