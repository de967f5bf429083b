"""Attention cores and space-time token groupings (docs/design.md §3).

Cores, all on token tensors ``[..., n, d]`` (``n`` tokens, ``d`` channels per head):

* ``hamming_linear`` — SDHA, the paper's spike-driven Hamming attention in linear form:
  ``(2Q-1) · ((2K-1)^T · V)``; the d×d product is computed first, so cost is O(n·d²);
* ``dot_linear`` — SDSA (Meta-SpikeFormer): ``Q · (K^T · V)``;
* ``softmax_attention`` — the real-valued ANN counterpart, quadratic in ``n``.

The explicit n×n forms (``hamming_explicit``, ``dot_explicit``) exist for tests and docs.

Groupings decide which tokens attend to each other, on spikes ``[T, B, C, H, W]``:

* ``joint``: all T·H·W tokens of a clip → ``[B, heads, T·H·W, d]`` ordered (t, h, w);
* ``spatial``: per frame → ``[T, B, heads, H·W, d]``;
* ``temporal``: per position → ``[B, H·W, heads, T, d]``.

Heads are contiguous channel chunks (channel ``c = head·d + j``), as in the official code.

Efficiency notes (measured with ``svf bench`` / docs/performance.md; kept as is because the
alternatives did not pay): the linear forms multiply the d×d product first, so one core costs
O(n·d²) time and O(n·d) memory. Rewriting SDHA as ``2·Q·KV − colsum(KV)`` with
``KV = 2·KᵀV − colsum(V)`` (no ±1 copies of Q and K) gave the same peak memory and ±5 % time
on svf_tiny / svf_15m stage-3 shapes. Chunking the joint core over heads or batch would only
shrink its O(T·N·C) transients, while the model's inference peak is in stage 1 (identical for
every design); compact spike dtypes (bf16/fp16) are not exact once a token count exceeds
256/2048 and int8 matmul is not a fast path on CPU.
"""
from __future__ import annotations

import math

import torch

__all__ = [
    "GROUPINGS", "to_tokens", "from_tokens", "hamming_linear", "dot_linear",
    "softmax_attention", "hamming_explicit", "dot_explicit", "resolve_scale",
]

GROUPINGS = ("joint", "spatial", "temporal")


def to_tokens(x: torch.Tensor, heads: int, grouping: str) -> torch.Tensor:
    """``[T, B, C, H, W]`` → token tensor of the grouping (see module docstring)."""
    T, B, C, H, W = x.shape
    d = C // heads
    if grouping == "joint":
        y = x.permute(1, 0, 3, 4, 2).reshape(B, T * H * W, heads, d)  # [B, THW, h, d]
        return y.transpose(1, 2)  # [B, h, THW, d]
    if grouping == "spatial":
        y = x.permute(0, 1, 3, 4, 2).reshape(T, B, H * W, heads, d)
        return y.transpose(2, 3)  # [T, B, h, HW, d]
    if grouping == "temporal":
        y = x.permute(1, 3, 4, 0, 2).reshape(B, H * W, T, heads, d)
        return y.transpose(2, 3)  # [B, HW, h, T, d]
    raise ValueError(f"grouping must be one of {GROUPINGS}, got {grouping!r}")


def from_tokens(y: torch.Tensor, shape: torch.Size, grouping: str) -> torch.Tensor:
    """Inverse of :func:`to_tokens`: back to ``[T, B, C, H, W]``."""
    T, B, C, H, W = shape
    if grouping == "joint":
        return y.transpose(1, 2).reshape(B, T, H, W, C).permute(1, 0, 4, 2, 3)
    if grouping == "spatial":
        return y.transpose(2, 3).reshape(T, B, H, W, C).permute(0, 1, 4, 2, 3)
    if grouping == "temporal":
        return y.transpose(2, 3).reshape(B, H, W, T, C).permute(3, 0, 4, 1, 2)
    raise ValueError(f"grouping must be one of {GROUPINGS}, got {grouping!r}")


def resolve_scale(scale: str | float, channels: int, head_dim: int) -> tuple[str, float]:
    """Turn a scale spec into ``("div", c)`` or ``("mul", c)``.

    ``"1/(2C)"`` divides by ``2·C`` (C = full channel width, docs/design.md §3.2; a true division as in the
    official code), ``"1/8"`` multiplies by 0.125, ``"1/sqrt(d)"`` by ``head_dim**-0.5``, and a
    number multiplies by itself.
    """
    if isinstance(scale, bool):
        raise TypeError("attention scale must be a string or a number, got bool")
    if isinstance(scale, (int, float)):
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"attention scale must be a positive finite number, got {scale}")
        return "mul", float(scale)
    key = str(scale).replace(" ", "").lower()
    if key in ("1/(2c)", "1/2c"):
        return "div", float(2 * channels)
    if key == "1/8":
        return "mul", 0.125
    if key in ("1/sqrt(d)", "1/sqrt(d_head)"):
        return "mul", head_dim ** -0.5
    raise ValueError(
        f"unknown attention scale {scale!r}: use '1/(2C)', '1/8', '1/sqrt(d)' or a positive float"
    )


def apply_scale(x: torch.Tensor, scale: tuple[str, float]) -> torch.Tensor:
    op, c = scale
    return x / c if op == "div" else x * c


def hamming_linear(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """SDHA core, unscaled: ``(2Q-1) · ((2K-1)^T · V)`` (docs/design.md eq. (3.5)), d×d product first."""
    kv = (2 * k - 1).transpose(-2, -1) @ v  # [..., d, d]
    return (2 * q - 1) @ kv


def dot_linear(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """SDSA core, unscaled: ``Q · (K^T · V)`` (Meta-SpikeFormer), d×d product first."""
    return q @ (k.transpose(-2, -1) @ v)


def hamming_explicit(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Explicit n×n SDHA: ``(f(Q,K) - 1/2) · V`` with ``f = 1 - Ham/d`` (scaled by 1/(2d))."""
    d = q.shape[-1]
    ham = q @ (1 - k).transpose(-2, -1) + (1 - q) @ k.transpose(-2, -1)  # mismatching bits
    f = 1 - ham / d
    return (f - 0.5) @ v


def dot_explicit(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Explicit n×n SDSA: ``(Q K^T) V``."""
    return (q @ k.transpose(-2, -1)) @ v


def softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Real-valued softmax attention ``softmax(Q K^T / sqrt(d)) V`` (ANN counterpart)."""
    return torch.nn.functional.scaled_dot_product_attention(q, k, v)
