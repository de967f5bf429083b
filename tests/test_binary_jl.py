"""Binary JL proposition (docs/design.md §3): empirical failure rate stays under 2·exp(-δ²D)."""
import math

import pytest
import torch

from spikevideoformer.analysis.binary_jl import (
    angular_similarity, hamming_similarity, jl_bound, jl_errors, jl_experiment, sign_bits,
)


def test_known_angles():
    q = torch.tensor([1.0, 0.0])
    assert angular_similarity(q, q).item() == pytest.approx(1.0)
    assert angular_similarity(q, -q).item() == pytest.approx(0.0)
    assert angular_similarity(q, torch.tensor([0.0, 1.0])).item() == pytest.approx(0.5)
    bits = sign_bits(torch.stack([q, -q]), torch.randn(64, 2))
    assert hamming_similarity(bits[0], bits[1]).item() == 0.0  # opposite vectors: all bits differ


@pytest.mark.parametrize("bits,delta", [(64, 0.2), (256, 0.1), (1024, 0.05)])
def test_failure_rate_under_bound(bits, delta):
    err = jl_errors(dim=32, bits=bits, trials=1500, generator=torch.Generator().manual_seed(1))
    failure = float((err > delta).double().mean())
    assert failure <= 2 * math.exp(-(delta ** 2) * bits)
    # and the error really shrinks like 1/sqrt(D): the experiment can fail
    assert float(err.mean()) < 1.0 / math.sqrt(bits)


def test_error_shrinks_with_d():
    res = jl_experiment(bits=(8, 64, 512), trials=500, dim=16)
    assert res.mean_error[0] > res.mean_error[1] > res.mean_error[2]
    assert res.bound[0.1][0] == pytest.approx(jl_bound(0.1, 8))
