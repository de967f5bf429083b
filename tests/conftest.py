"""Shared test settings (fixtures only: few threads, deterministic seeds, time limits).

Helpers that tests import live in ``helpers.py``.
"""
import pytest
import torch


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
