"""Activation checkpointing of one block with exact gradients and exact BatchNorm statistics.

:func:`checkpoint_block` runs ``block(x)`` under ``torch.utils.checkpoint`` (non-reentrant):
the forward keeps only the block's input; backward runs the block again to rebuild what its
gradient needs. The rebuilt forward must be *the same* computation:

* RNG (dropout, stochastic depth) is replayed: ``preserve_rng_state=True`` (checkpoint's default).
* BatchNorm in train mode normalises with the batch statistics, but each train-mode call
  also updates the running statistics and ``num_batches_tracked`` in place, and a layer may
  read them right after the update (``BNAndPad`` fills its border with ``BN(0)`` from the
  running statistics). So the recomputation must start from the statistics the original
  forward started from, and must not count the batch again: :class:`_ReplayBatchNormStats`
  snapshots every BatchNorm buffer of the block before the forward, loads that snapshot for
  the recomputation and puts the current values back afterwards. After ``loss.backward()``
  the buffers equal those of the model without checkpointing (a few kB per block are held
  until backward).

Forward hooks registered inside a checkpointed block run again during backward.
"""
from __future__ import annotations

import contextlib
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

__all__ = ["checkpoint_block"]


def _bn_buffers(module: nn.Module) -> list[torch.Tensor]:
    return [b for m in module.modules() if isinstance(m, nn.modules.batchnorm._NormBase)
            for b in (m.running_mean, m.running_var, m.num_batches_tracked) if b is not None]


class _ReplayBatchNormStats:
    """The two contexts (forward, recompute) that replay the BatchNorm buffers of ``module``."""

    def __init__(self, module: nn.Module) -> None:
        self.buffers = _bn_buffers(module)
        self.before: list[torch.Tensor] = []
        self.current: list[torch.Tensor] = []

    @contextlib.contextmanager
    def forward(self):
        self.before = [b.clone() for b in self.buffers]
        yield

    @contextlib.contextmanager
    def recompute(self):
        self.current = [b.clone() for b in self.buffers]
        try:
            with torch.no_grad():
                for buf, value in zip(self.buffers, self.before):
                    buf.copy_(value)
            yield
        finally:  # also on checkpoint's early stop (once every needed tensor is rebuilt)
            with torch.no_grad():
                for buf, value in zip(self.buffers, self.current):
                    buf.copy_(value)
            self.current = []

    def contexts(self):
        return self.forward(), self.recompute()


def checkpoint_block(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``block(x)`` keeping only ``x`` for backward (recomputed then, see the module doc)."""
    return checkpoint(block, x, use_reentrant=False, preserve_rng_state=True,
                      context_fn=_ReplayBatchNormStats(block).contexts)
