"""The optimizer (AdamW, :func:`build_optimizer`) and its per-step learning-rate schedule:
linear warmup followed by cosine decay.

The learning rate used by optimizer step ``s`` (0-based) is ``base_lr * lr_factor(s)``::

    s <  W:  (s + 1) / W                                   linear warmup, never exactly 0
    s >= W:  m + (1 - m) * 0.5 * (1 + cos(pi * p)),         p = min(1, (s - W) / max(1, T - W))

with ``W = warmup_steps``, ``T = total_steps``, ``m = min_lr_ratio``.  The value is a closed
form of the step counter, so a schedule restored from :meth:`state_dict` continues exactly.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Dict, List

import torch
from torch.optim.lr_scheduler import LRScheduler

__all__ = ["WarmupCosineSchedule", "build_optimizer", "lr_factor", "steps_from_epochs"]


def lr_factor(step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0) -> float:
    """Multiplier of the base learning rate for optimizer step ``step`` (0-based)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def steps_from_epochs(warmup_epochs: float, epochs: int, steps_per_epoch: int) -> Dict[str, int]:
    """``{"warmup_steps", "total_steps"}`` for a run of ``epochs`` x ``steps_per_epoch`` steps."""
    total = int(epochs) * int(steps_per_epoch)
    return {"warmup_steps": min(total, int(round(warmup_epochs * steps_per_epoch))), "total_steps": total}


class WarmupCosineSchedule(LRScheduler):
    """Linear-warmup + cosine LR schedule stepped once per optimizer step.

    A regular :class:`torch.optim.lr_scheduler.LRScheduler` (use it like ``LambdaLR``: call
    :meth:`step` after every ``optimizer.step()``).  :meth:`state_dict` is a small JSON-able
    dict, so checkpoints store it in ``meta.json`` and resume is exact.

    Args:
        optimizer: the wrapped optimizer; each group's ``lr`` at construction is its base LR.
        warmup_steps: number of linear-warmup steps (0 = none).
        total_steps: length of the schedule; after it the LR stays at ``min_lr_ratio * base``.
        min_lr_ratio: final LR as a fraction of the base LR.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                 min_lr_ratio: float = 0.0, last_epoch: int = -1) -> None:
        if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
            raise ValueError(f"need 0 <= warmup_steps ({warmup_steps}) <= total_steps ({total_steps}) "
                             f"and total_steps >= 1")
        if not 0.0 <= min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
        self.warmup_steps, self.total_steps = int(warmup_steps), int(total_steps)
        self.min_lr_ratio = float(min_lr_ratio)
        super().__init__(optimizer, last_epoch)

    def factor(self, step: int) -> float:
        """LR multiplier for optimizer step ``step``."""
        return lr_factor(step, self.warmup_steps, self.total_steps, self.min_lr_ratio)

    def get_lr(self) -> List[float]:
        f = self.factor(max(0, self.last_epoch))
        return [float(base) * f for base in self.base_lrs]

    _get_closed_form_lr = get_lr

    @property
    def step_count(self) -> int:
        """Number of optimizer steps taken (= index of the next step)."""
        return self.last_epoch

    def state_dict(self) -> Dict[str, Any]:
        """JSON-serialisable state (step counter, base LRs and the schedule's parameters)."""
        return {"last_epoch": int(self.last_epoch), "_step_count": int(self._step_count),
                "base_lrs": [float(b) for b in self.base_lrs],
                "_last_lr": [float(v) for v in self.get_last_lr()],
                "warmup_steps": self.warmup_steps, "total_steps": self.total_steps,
                "min_lr_ratio": self.min_lr_ratio}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output and re-apply the LR of the current step.

        The step counter and base LRs come from the checkpoint; the schedule's shape
        (warmup/total steps, min ratio) stays this instance's, with a warning if it differs.
        """
        state = dict(state_dict)
        for key in ("warmup_steps", "total_steps", "min_lr_ratio"):
            if key in state and state.pop(key) != getattr(self, key):
                warnings.warn(f"schedule changed on resume: checkpoint had {key}={state_dict[key]}, "
                              f"this run uses {getattr(self, key)} (epochs, batch size or world size "
                              f"changed?); continuing on the new schedule, resume is not exact")
        self.__dict__.update(state)
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]


def build_optimizer(model: torch.nn.Module, cfg) -> torch.optim.AdamW:
    """AdamW over trainable parameters; no weight decay on biases, norm weights and other 1-D
    parameters, nor on names listed by ``model.no_weight_decay()`` (timm convention)."""
    skip = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name in skip or name.split(".")[-1] in skip else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr, betas=tuple(cfg.betas))
