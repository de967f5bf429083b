"""Early stopping on a plateau of the validation metric (``run.early_stop_patience``).

A run whose main validation metric has not improved by more than ``min_delta`` over the best
value for ``patience`` consecutive validations stops after that epoch. The schedule is not
shortened: the run simply ends, with ``best/`` holding the best weights. ``patience = None``
(the default) trains every epoch of ``optim.epochs``.

The state (best value, stale count) is part of the trainer state in every checkpoint, so a
resumed run stops where an uninterrupted one would.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Optional

__all__ = ["PlateauStopper"]


@dataclass
class PlateauStopper:
    """Counts validations without improvement; ``update(value)`` returns True to stop."""

    patience: Optional[int]
    min_delta: float = 0.0
    higher_is_better: bool = True
    best: Optional[float] = None
    stale: int = 0

    def update(self, value: Optional[float]) -> bool:
        """Record one validation result (None or non-finite: an epoch without validation,
        not counted); True once ``patience`` validations in a row did not improve."""
        if self.patience is None or value is None or not math.isfinite(value):
            return False
        gain = (value - self.best) if self.best is not None else math.inf
        if not self.higher_is_better:
            gain = (self.best - value) if self.best is not None else math.inf
        if gain > self.min_delta:
            self.best, self.stale = float(value), 0
        else:
            self.stale += 1
        return self.stale >= self.patience

    @property
    def stopped(self) -> bool:
        """True once ``patience`` validations in a row brought no gain."""
        return self.patience is not None and self.stale >= self.patience

    def state_dict(self) -> Dict[str, Any]:
        return {"best": self.best, "stale": self.stale}

    def load_state_dict(self, state: Optional[Dict[str, Any]]) -> None:
        if state:  # checkpoints written before early stopping existed carry no state
            self.best, self.stale = state.get("best"), int(state.get("stale", 0))
