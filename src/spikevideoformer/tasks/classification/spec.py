"""The classification entry of the task table (:mod:`..registry`)."""
from __future__ import annotations

from pathlib import Path

from ..common import write_json
from ..datasets import TaskData
from ..registry import TaskSpec
from .data import build_classification_data
from .metrics import save_confusion_png
from .runner import build_classifier, evaluate_classification, predict_video, print_eval_summary
from .task import ClassificationTask

__all__ = ["ClassificationSpec", "SPEC"]


class ClassificationSpec(TaskSpec):
    """Video classification: cross-entropy, top-1/top-5, confusion matrix; ``svf predict``."""

    name = "classification"
    per_step_loss = True
    predict = staticmethod(predict_video)

    def check(self, cfg) -> None:
        super().check(cfg)
        if cfg.model.num_classes < 2:
            raise ValueError("model.num_classes must be >= 2 for classification")

    def build_data(self, cfg) -> TaskData:
        train, val, classes, collate = build_classification_data(cfg.data, cfg.model.num_classes,
                                                                 cfg.run.seed)
        return TaskData(train, val, classes, collate)

    def build_model(self, cfg, data=None):
        return build_classifier(cfg)

    def make_task(self, cfg, data) -> ClassificationTask:
        return ClassificationTask(cfg.model.num_classes, cfg.optim.label_smoothing, cfg.optim.per_step_loss)

    def on_start(self, trainer, task, data) -> None:
        if trainer.is_main:
            write_json(Path(trainer.cfg.run.out_dir) / "classes.json", {"classes": data.classes})

    def on_end(self, trainer, task, data) -> None:
        if trainer.is_main and task.last_confusion is not None:
            save_confusion_png(task.last_confusion, data.classes,
                               Path(trainer.cfg.run.out_dir) / "confusion.png")

    def evaluate(self, checkpoint, out_dir=None, *, print_table=False, overrides=None) -> dict:
        res = evaluate_classification(checkpoint, out_dir, overrides)
        if print_table:
            print_eval_summary(res)
        return res

    def demo(self, out=None, modality="rgb", quick=False, compare=False, overrides=(),
             progress=True) -> int:
        from .demo import run_classification_demo
        return run_classification_demo(out, modality, quick, compare, overrides, progress)

    def chance(self, cfg) -> float:
        return 1 / cfg.model.num_classes


SPEC = ClassificationSpec()
