"""Binary Johnson-Lindenstrauss proposition (docs/design.md §3.5, the paper's justification of SDHA).

If the spike bits of q and k are the signs of D random Gaussian projections of real vectors,
the normalised Hamming similarity ``1 - Ham/D`` concentrates around ``1 - angle(q, k)/π``:
with probability at least ``1 - 2·exp(-δ²·D)`` the two differ by at most δ. So ranking keys by
spike-Hamming similarity approximates ranking them by real cosine similarity.

Each bit disagrees with probability exactly ``angle/π`` (random hyperplane rounding), so the
Hamming similarity is a mean of D independent Bernoulli variables and Hoeffding's inequality
gives the (tighter) ``2·exp(-2δ²D)``; the paper's bound is therefore conservative.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["sign_bits", "hamming_similarity", "angular_similarity", "jl_errors", "JLResult",
           "jl_experiment", "jl_bound"]


def sign_bits(x: torch.Tensor, proj: torch.Tensor) -> torch.Tensor:
    """Spike bits ``1[proj · x > 0]``: ``x [..., n]``, ``proj [D, n]`` → ``[..., D]`` in {0, 1}."""
    return (x @ proj.T > 0).to(torch.float32)


def hamming_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``1 - Ham(a, b)/D`` for bit vectors over the last axis."""
    return 1.0 - (a != b).float().mean(-1)


def angular_similarity(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``1 - arccos(cos(q, k))/π`` over the last axis."""
    cos = torch.nn.functional.cosine_similarity(q, k, dim=-1).clamp(-1.0, 1.0)
    return 1.0 - torch.arccos(cos) / math.pi


def jl_errors(dim: int, bits: int, trials: int, generator: torch.Generator) -> torch.Tensor:
    """``|Hamming similarity - angular similarity|`` for ``trials`` random (q, k, projection)."""
    q = torch.randn(trials, dim, generator=generator, dtype=torch.float64)
    k = torch.randn(trials, dim, generator=generator, dtype=torch.float64)
    mix = torch.rand(trials, 1, generator=generator, dtype=torch.float64)
    k = mix * q + (1 - mix) * k  # spread the angles over (0, π/2] rather than ≈ π/2 only
    proj = torch.randn(trials, bits, dim, generator=generator, dtype=torch.float64)
    hq = (torch.einsum("tbd,td->tb", proj, q) > 0)
    hk = (torch.einsum("tbd,td->tb", proj, k) > 0)
    ham = 1.0 - (hq != hk).double().mean(-1)
    return (ham - angular_similarity(q, k)).abs()


def jl_bound(delta: float, bits: int) -> float:
    """The proposition's lower bound on ``P(|error| <= δ)``: ``1 - 2·exp(-δ²·D)``."""
    return 1.0 - 2.0 * math.exp(-(delta ** 2) * bits)


@dataclass
class JLResult:
    bits: list[int]
    mean_error: list[float]
    p95_error: list[float]
    deltas: list[float]
    success: dict[float, list[float]]  # empirical P(|error| <= δ) per D
    bound: dict[float, list[float]]    # 1 - 2 exp(-δ² D) per D

    def rows(self) -> list[dict]:
        out = []
        for i, d in enumerate(self.bits):
            row = {"D": d, "mean_abs_error": self.mean_error[i], "p95_abs_error": self.p95_error[i]}
            for delta in self.deltas:
                row[f"P(err<={delta})"] = self.success[delta][i]
                row[f"bound({delta})"] = self.bound[delta][i]
            out.append(row)
        return out


def jl_experiment(bits=(8, 16, 32, 64, 128, 256, 512, 1024), deltas=(0.05, 0.1, 0.2),
                  dim: int = 64, trials: int = 2000, seed: int = 0) -> JLResult:
    """Measure the error and the empirical success rate against the bound for each D."""
    g = torch.Generator().manual_seed(seed)
    res = JLResult(list(bits), [], [], list(deltas), {d: [] for d in deltas}, {d: [] for d in deltas})
    for b in bits:
        err = jl_errors(dim, b, trials, g)
        res.mean_error.append(float(err.mean()))
        res.p95_error.append(float(err.quantile(0.95)))
        for d in deltas:
            res.success[d].append(float((err <= d).double().mean()))
            res.bound[d].append(jl_bound(d, b))
    return res
