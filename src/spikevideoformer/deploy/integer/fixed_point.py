"""Fixed-point LIF and Integer-LIF on integer membranes (docs/integer.md, "Fixed-point neuron").

NumPy only (no torch): the integer runner loads this file on its own. The equations are those
of docs/design.md §1 with every quantity an integer in *membrane units* ``μ`` (a per-channel
real value of one unit, chosen by ``quantize.py``):

* charge, ``decay_input=True`` (eq. (1.1) with ``v_reset = 0``)::

      H = V + rdiv(X - V)                 rdiv(a) = (a·M + 2^(S-1)) >> S,  M / 2^S ≈ 1/τ

  ``decay_input=False`` (eq. (1.5)): ``H = V - rdiv(V) + X``. ``rdiv`` rounds to nearest,
  ties toward +∞ (add half, arithmetic shift right); for τ = 2 it is ``(a + 1) >> 1``;
* binary fire (eq. (1.2)): ``s = H ≥ Θ`` (ties at the threshold fire, as in float);
  hard reset ``V = 0 if s else H``, soft reset ``V = H - R·s`` (``R ≈ v_th / μ``);
* Integer-LIF (eq. (1.7)): ``k = clamp(round_half_even(H / U), 0, D)``, ``V = H - k·U``,
  with ``U`` the membrane value of one spike (ties round to even, as ``torch.round``).

Given the same integer inputs these are exact; they equal the float neuron whenever the float
membrane is itself a multiple of ``μ`` (enough fraction bits, docs/integer.md).
"""
from __future__ import annotations

import numpy as np

__all__ = ["decay_constant", "rdiv", "div_round_half_even", "lif_int", "INT32_MAX"]

INT32_MAX = 2 ** 31 - 1
_DECAY_BITS = 16


def decay_constant(tau: float) -> tuple[int, int]:
    """``(M, S)`` with ``M / 2^S`` the fixed-point ``1/τ`` (16 bits, reduced: τ = 2 → (1, 1))."""
    if not tau > 1.0:
        raise ValueError(f"LIF tau must be > 1, got {tau}")
    m, s = int(round(2 ** _DECAY_BITS / tau)), _DECAY_BITS
    while m % 2 == 0 and s > 0:
        m, s = m // 2, s - 1
    return m, s


def rdiv(a: np.ndarray, m: int, s: int) -> np.ndarray:
    """``round(a · m / 2^s)``, ties toward +∞, in int64 (``a`` an integer array)."""
    a = np.asarray(a, dtype=np.int64) * m
    return (a + (1 << (s - 1))) >> s if s > 0 else a


def div_round_half_even(h: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``round(h / u)`` with ties to even, exactly, for integer ``h`` and positive integer ``u``."""
    q = np.floor_divide(h, u)
    twice = 2 * (h - q * u)
    up = (twice > u) | ((twice == u) & (q % 2 == 1))
    return q + up


def lif_int(x: np.ndarray, *, theta: np.ndarray | None = None, unit: np.ndarray | None = None,
            spike_max: int = 1, tau: tuple[int, int] = (1, 1), decay_input: bool = True,
            soft_reset: bool = False, reset_sub: np.ndarray | None = None,
            temporal_state: bool = True) -> tuple[np.ndarray, int]:
    """Multi-step integer LIF on ``x [T, ...]`` (int64, membrane units) → ``(spikes, peak)``.

    ``theta`` (binary) / ``unit`` (Integer-LIF, ``spike_max = D > 1``) broadcast against
    ``x[t]`` (per channel: ``[C, 1, 1]``). ``spikes`` are uint8 counts (0/1 or 0..D); ``peak``
    is the largest ``|H|`` reached, to check the membrane fits its declared width.
    """
    x = np.asarray(x, dtype=np.int64)
    m, s = tau
    out = np.empty(x.shape, dtype=np.uint8)
    peak = 0
    v = np.zeros(x.shape[1:], dtype=np.int64)
    for t in range(x.shape[0]):
        if t > 0 and not temporal_state:
            v = np.zeros_like(v)
        h = v + rdiv(x[t] - v, m, s) if decay_input else v - rdiv(v, m, s) + x[t]
        if h.size:
            peak = max(peak, int(np.abs(h).max()))
        if spike_max == 1:
            fired = h >= theta
            if soft_reset:
                v = h - np.where(fired, reset_sub, 0)
            else:
                v = np.where(fired, 0, h)
            out[t] = fired
        else:
            k = np.clip(div_round_half_even(h, unit), 0, spike_max)
            v = h - k * unit
            out[t] = k
    return out, peak
