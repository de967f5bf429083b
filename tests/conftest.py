"""Shared test settings: few threads (CI has 2 cores), deterministic seeds, reference paths."""
from pathlib import Path

import pytest
import torch


REFERENCE = Path(__file__).parent / "data" / "reference"


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread (restored afterwards: benchmarks change it). On a busy 2-core
    machine two OpenMP threads stall on every parallel region and run many times slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


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


SLOW_TIMEOUT_S = 3600  # the default per-test limit (pyproject: timeout) is for the fast suite


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT_S))
