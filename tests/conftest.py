"""Shared test settings: few threads (CI has 2 cores), deterministic seeds, reference paths."""
import pytest
import torch


from helpers import REFERENCE, randomize_bn  # noqa: F401  (older imports from conftest)


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


SLOW_TIMEOUT_S = 3600  # the default per-test limit (pyproject: timeout) is for the fast suite


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT_S))
