"""Operations counted while the integer network runs (docs/integer.md, "Counted operations").

NumPy only. The rule is the energy model's (docs/design.md §5.1, §5.3), applied to the spikes
that actually occur instead of a mean rate:

* spike-fed conv/linear: every input entry of value ``s`` (``s`` additions for an Integer-LIF
  count) is added into each output it reaches: ``Σ s · fan(p) · C_out/groups``, where
  ``fan(p)`` is the number of output positions whose window holds input position ``p``
  (fewer at a zero-padded border; position-dependent for strided convs);
* real-fed conv (the stem; SepConv's ``pwconv2``): one MAC per in-bounds (input entry, weight)
  pair, ``Σ_p fan(p) · C_in · C_out/groups``; zero padding is not executed;
* ``K^T V``: ``d`` additions per unit of V; ``Q (K^T V)``: ``d · |2k - D|`` (SDHA) or ``d · k``
  (SDSA) per entry of Q;
* not counted (as in the energy model): biases, residual additions, pooling, neuron updates.

Counts are per time step ``t`` (the frame of the input entry; for ``K^T V`` the frame of the
V token, for ``Q (K^T V)`` that of the query).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["fan_map", "conv_ops", "attention_ops", "OpCount", "CountReport", "STAGE_ORDER"]

STAGE_ORDER = ("stem", "stage1", "stage2", "stage3", "stage4", "head")


def fan_map(h: int, w: int, kernel: int, stride: int, padding: int) -> np.ndarray:
    """``[h, w]`` int64: how many output positions of the conv read each input position."""
    ho = (h + 2 * padding - kernel) // stride + 1
    wo = (w + 2 * padding - kernel) // stride + 1
    fan = np.zeros((h + 2 * padding, w + 2 * padding), dtype=np.int64)
    for u in range(kernel):
        for v in range(kernel):
            fan[u:u + stride * (ho - 1) + 1:stride, v:v + stride * (wo - 1) + 1:stride] += 1
    return fan[padding:padding + h, padding:padding + w]


def conv_ops(x: np.ndarray, c_out: int, groups: int, kernel: int, stride: int, padding: int,
             spike: bool) -> np.ndarray:
    """Operations per time step of one conv on ``x [T, C_in, H, W]``: accumulates driven by
    the spike counts ``x`` (``spike``), or in-bounds MACs of a real-valued input."""
    T, c_in, h, w = x.shape
    fan = fan_map(h, w, kernel, stride, padding)
    per_out = c_out // groups
    if spike:
        return np.einsum("tchw,hw->t", x.astype(np.int64), fan) * per_out
    return np.full(T, int(fan.sum()) * c_in * per_out, dtype=np.int64)


def attention_ops(q: np.ndarray, v: np.ndarray, heads: int, kind: str,
                  dn: int) -> tuple[np.ndarray, np.ndarray]:
    """``(K^T V ops, Q (K^T V) ops)`` per time step for spike counts ``q, v [T, C, H, W]``."""
    d = q.shape[1] // heads
    T = q.shape[0]
    kv = v.reshape(T, -1).astype(np.int64).sum(1) * d
    qi = q.reshape(T, -1).astype(np.int64)
    qkv = (np.abs(2 * qi - dn) if kind == "hamming" else qi).sum(1) * d
    return kv, qkv


@dataclass
class OpCount:
    """One weight layer or attention product: operations per time step and input statistics."""

    name: str
    stage: str
    kind: str                 # conv, dwconv, linear, "K^T V", "Q (K^T V)"
    input: str                # "spike" (additions) or "real" (MACs)
    input_shape: tuple
    dense_macs: int           # out.numel · C_in/groups · k² (the energy model's MACs)
    per_step: list            # counted operations at t = 0..T-1
    nnz: int = 0              # non-zero driving entries (spike inputs)
    numel: int = 0            # driving entries
    count_sum: int = 0        # Σ |driving values| in spike units

    @property
    def ops(self) -> int:
        return int(sum(self.per_step))

    @property
    def rate(self) -> float:
        return self.nnz / self.numel if self.input == "spike" and self.numel else 0.0

    @property
    def mean_count(self) -> float:
        return self.count_sum / self.nnz if self.input == "spike" and self.nnz else 0.0


@dataclass
class CountReport:
    """Counted operations of one clip: rows in execution order, totals, per-stage sums."""

    rows: list = field(default_factory=list)
    frames: int = 0

    @property
    def additions(self) -> int:
        return sum(r.ops for r in self.rows if r.input == "spike")

    @property
    def macs(self) -> int:
        return sum(r.ops for r in self.rows if r.input == "real")

    def by_stage(self) -> dict[str, dict[str, int]]:
        """``stage → {"additions", "macs"}`` in backbone order."""
        out = {s: {"additions": 0, "macs": 0} for s in STAGE_ORDER}
        for r in self.rows:
            out.setdefault(r.stage, {"additions": 0, "macs": 0})
            out[r.stage]["additions" if r.input == "spike" else "macs"] += r.ops
        return out

    def table(self) -> str:
        """Per-row table (the columns of ``svf energy``), then per-stage sums."""
        w = max([len(r.name) for r in self.rows] + [5])
        head = (f"{'layer':<{w}} {'stage':<6} {'kind':<10} {'input':<5} {'rate':>6} {'count':>5} "
                f"{'dense MMACs':>11} {'counted M':>10}")
        lines = [head, "-" * len(head)]
        for r in self.rows:
            sp = r.input == "spike"
            lines.append(f"{r.name:<{w}} {r.stage:<6} {r.kind:<10} {r.input:<5} "
                         f"{(f'{r.rate:.3f}' if sp else '-'):>6} "
                         f"{(f'{r.mean_count:.2f}' if sp else '-'):>5} "
                         f"{r.dense_macs / 1e6:>11.3f} {r.ops / 1e6:>10.3f}")
        lines.append("-" * len(head))
        lines.append(f"{'stage':<8} {'M additions':>12} {'M MACs':>10}")
        for s, v in self.by_stage().items():
            lines.append(f"{s:<8} {v['additions'] / 1e6:>12.4f} {v['macs'] / 1e6:>10.4f}")
        lines.append(f"{'total':<8} {self.additions / 1e6:>12.4f} {self.macs / 1e6:>10.4f}")
        return "\n".join(lines)
