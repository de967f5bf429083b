"""Test helper: random BatchNorm statistics that keep a random-weight SNN active.

``conftest.randomize_bn`` alone (BN weight 0.75-1.25) leaves svf_tiny almost silent, so
folding and profiling tests would compare all-zero spike trains. ``lively_bn`` randomises
the running statistics the same way, then draws BN weights of magnitude 1.5-3 with about
one in five negative (exercising the sign flip of the attention-threshold fold) and biases
around +0.5.
"""
import torch

from conftest import randomize_bn


def lively_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    randomize_bn(model, seed)
    g = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.affine:
            c = m.num_features
            sign = torch.where(torch.rand(c, generator=g) < 0.2, -1.0, 1.0)
            m.weight.data.copy_(sign * (torch.rand(c, generator=g) * 1.5 + 1.5))
            m.bias.data.copy_(torch.randn(c, generator=g) * 0.5 + 0.5)
    return model
