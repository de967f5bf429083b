"""The task table: ``run.task`` name → :class:`TaskSpec` (what the CLI, the shared fit helper
and the ablation study need from a task).

Entries are ``"module:attribute"`` strings imported on first use (a task imports the engine and
its model), or spec objects. A new task::

    class MySpec(TaskSpec):
        name = "depth"
        def build_data(self, cfg, **options): ...
        def build_model(self, cfg, data=None, **options): ...
        def make_task(self, cfg, data): ...
    register_task(MySpec())          # or register_task("depth", "mypkg.depth:SPEC")
"""
from __future__ import annotations

import importlib
from typing import Any, Optional, Sequence, Union

__all__ = ["TaskSpec", "register_task", "get_task", "task_names"]


class TaskSpec:
    """One task: its data, model and task object for training, then evaluation, demo, predict.

    ``options`` names the extra keyword options its fit / evaluate accept (pose: ``smpl_model``).
    The hooks ``prepare`` / ``on_start`` / ``on_end`` default to doing nothing.
    """

    name: str = ""
    options: Sequence[str] = ()
    predict: Optional[Any] = None  # ``predict(video, checkpoint, topk)`` where the task has one
    per_step_loss: bool = False  # whether the task honours ``optim.per_step_loss`` (docs/design.md §7.4)

    def check(self, cfg) -> None:
        """Reject a config this task cannot train, before any work."""
        if cfg.optim.per_step_loss and not self.per_step_loss:
            raise ValueError(f"optim.per_step_loss applies to classification only; the {self.name} "
                             "loss is already computed on every frame's output")

    def build_data(self, cfg, **options):
        """:class:`~.datasets.TaskData` (train and val datasets, ...) of ``cfg``."""
        raise NotImplementedError

    def build_model(self, cfg, data=None, **options):
        """The freshly initialised model of ``cfg`` (``data``: the run's TaskData, if any)."""
        raise NotImplementedError

    def make_task(self, cfg, data):
        """The :class:`~spikevideoformer.engine.Task` object (loss, metrics) for the Trainer."""
        raise NotImplementedError

    def prepare(self, model, cfg, data):
        """Task-specific initialisation of ``model`` before training; returns the config the
        Trainer starts from (``cfg`` unless a step of it was already done here)."""
        return cfg

    def on_start(self, trainer, task, data) -> None:
        """Files / messages before training (the Trainer exists; check ``trainer.is_main``)."""

    def on_end(self, trainer, task, data) -> None:
        """Files after training (check ``trainer.is_main``)."""

    def evaluate(self, checkpoint, out_dir=None, *, print_table: bool = False,
                 overrides: Optional[dict] = None, **options) -> dict:
        """Score a checkpoint on its validation split (``svf eval``)."""
        raise NotImplementedError

    def demo(self, out=None, modality: str = "rgb", quick: bool = False, compare: bool = False,
             overrides: Sequence[str] = (), progress: bool = True) -> int:
        """``svf demo --task NAME``: train on the embedded data and use the checkpoint."""
        raise NotImplementedError(f"task {self.name!r} has no demo")

    def chance(self, cfg) -> Optional[float]:
        """The main metric's chance level (drawn in ablation charts), if it has one."""
        return None

    def __repr__(self) -> str:
        return f"<TaskSpec {self.name!r}>"


_TASKS: dict[str, Union[str, TaskSpec]] = {
    "classification": "spikevideoformer.tasks.classification.spec:SPEC",
    "pose": "spikevideoformer.tasks.pose.spec:SPEC",
    "segmentation": "spikevideoformer.tasks.segmentation.spec:SPEC",
}


def register_task(spec: Union[TaskSpec, str], target: Optional[str] = None) -> None:
    """Add a task: a :class:`TaskSpec` object, or a name and its ``"module:attribute"``."""
    if isinstance(spec, TaskSpec):
        if not spec.name:
            raise ValueError("a TaskSpec needs a name")
        _TASKS[spec.name] = spec
    elif isinstance(spec, str) and target and ":" in target:
        _TASKS[spec] = target
    else:
        raise TypeError("register_task(spec) or register_task(name, 'module:attribute')")


def task_names() -> tuple[str, ...]:
    """Registered task names, in registration order."""
    return tuple(_TASKS)


def get_task(name: str) -> TaskSpec:
    """The spec of task ``name``; unknown names raise ValueError listing the registered ones."""
    entry = _TASKS.get(name)
    if entry is None:
        raise ValueError(f"unknown task {name!r} (run.task); registered tasks: {', '.join(_TASKS)}")
    if isinstance(entry, str):
        module, attr = entry.split(":")
        entry = _TASKS[name] = getattr(importlib.import_module(module), attr)
    return entry
