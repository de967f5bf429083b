"""Helpers shared by the tests (imported as ``from helpers import ...``; conftest holds fixtures only).

- :func:`randomize_bn` / :func:`lively_bn`: BatchNorm statistics that make a random-weight
  network fire (at init, eval-mode BN leaves most LIF layers silent);
- :func:`firing_rates` / :func:`assert_fires`: a test whose claim is about spikes first shows
  that there are spikes -- an equality between two silent networks proves nothing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

REFERENCE = Path(__file__).parent / "data" / "reference"


def randomize_bn(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm non-trivial running statistics and affine parameters."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=g) * 0.5 + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.rand(c, generator=g) * 0.5 + 0.75)
                m.bias.data.copy_(torch.randn(c, generator=g) * 0.1 + 0.2)


def lively_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """:func:`randomize_bn`, then BN weights of magnitude 1.5-3 (about one in five negative,
    which exercises the sign flip of the attention-threshold fold) and biases around +0.5:
    enough to keep svf_tiny's LIF layers active with random weights."""
    randomize_bn(model, seed)
    g = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.affine:
            c = m.num_features
            sign = torch.where(torch.rand(c, generator=g) < 0.2, -1.0, 1.0)
            m.weight.data.copy_(sign * (torch.rand(c, generator=g) * 1.5 + 1.5))
            m.bias.data.copy_(torch.randn(c, generator=g) * 0.5 + 0.5)
    return model


def _is_neuron(m: torch.nn.Module) -> bool:
    from spikevideoformer.layers import LIF
    return isinstance(m, LIF) or type(m).__name__ == "InferenceLIF"


def firing_rates(model: torch.nn.Module, run: Callable[[], object]) -> dict[str, float]:
    """Fraction of non-zero outputs of every LIF layer of ``model`` while ``run()`` executes."""
    rates: dict[str, float] = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, name=name: rates.__setitem__(
                 name, float((out.detach() != 0).float().mean())))
             for name, m in model.named_modules() if _is_neuron(m)]
    try:
        with torch.no_grad():
            run()
    finally:
        for h in hooks:
            h.remove()
    return rates


def assert_fires(model: torch.nn.Module, run: Callable[[], object], min_fraction: float = 0.05,
                 lo: float = 0.01, hi: float = 0.9) -> dict[str, float]:
    """Assert that at least ``min_fraction`` of the LIF layers fire at a rate in ``(lo, hi)``."""
    rates = firing_rates(model, run)
    assert rates, "the model has no LIF layers"
    lively = [n for n, r in rates.items() if lo < r < hi]
    assert len(lively) >= max(1, min_fraction * len(rates)), (
        f"only {len(lively)} of {len(rates)} LIF layers fire at a rate in ({lo}, {hi}): "
        f"a comparison on this network would compare (almost) silent spike trains")
    return rates


def dyadic(folded: torch.nn.Module, unfolded_bn: bool = False) -> torch.nn.Module:
    """Make a folded model exactly representable in 16-bit integers (in place): weights and
    biases on multiples of 2^-5 (|w| <= 2); thresholds, spike units and neuron biases on
    multiples of 2^-2. ``unfolded_bn`` also sets every BatchNorm2d ``fold`` left in place (the
    segmentation decoder's) to ``eps = 0``, unit variance and dyadic mean/affine, so the float
    model computes them without rounding."""
    from torch import nn
    from spikevideoformer.deploy import InferenceLIF

    with torch.no_grad():
        for m in folded.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.clamp(torch.round(m.weight * 32), -64, 64) / 32)
                if m.bias is not None:
                    m.bias.copy_(torch.round(m.bias * 32) / 32)
            elif isinstance(m, InferenceLIF):
                for name in ("v_th", "unit"):
                    t = getattr(m, name)
                    if isinstance(t, torch.Tensor):
                        t.copy_(torch.clamp(torch.round(t * 4) / 4, min=0.25))
                if m.bias is not None:
                    m.bias.copy_(torch.round(m.bias * 4) / 4)
            elif unfolded_bn and isinstance(m, nn.BatchNorm2d):
                m.eps = 0.0
                m.running_var.fill_(1.0)
                for t in (m.running_mean, m.weight, m.bias):
                    t.copy_(torch.round(t * 8) / 8)
    return folded


def train_named(config: str, overrides: list[str], out_dir: Path, seed: int) -> list[dict]:
    """Train a shipped config (+ ``overrides``) quietly into ``out_dir``; its per-epoch history.
    The demos' reduced learning tests use it (benchmarks/learning_spread.py measures them)."""
    import contextlib
    import io

    from spikevideoformer.engine import read_jsonl
    from spikevideoformer.engine.named_configs import load_named_config
    from spikevideoformer.tasks.fit import fit_task

    cfg = load_named_config(config, list(overrides) + [f"run.seed={seed}"], out_dir=out_dir)
    with contextlib.redirect_stdout(io.StringIO()):
        fit_task(cfg, progress=False)
    return read_jsonl(Path(out_dir) / "metrics.jsonl")
