"""``auto`` measures native vs torch once per shape class and caches the faster (layers/_lif_autotune.py)."""
import json

import pytest
import torch

from spikevideoformer.layers import _lif_autotune as autotune
from spikevideoformer.layers import _lif_native, lif_backends
from spikevideoformer.layers.neuron import LIFParams, lif_multistep

pytestmark = pytest.mark.skipif(_lif_native._native_lib() is None,
                                reason="native LIF kernel unavailable: auto has nothing to choose")


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """An empty cache folder, nothing in memory, backend 'auto', measuring on."""
    monkeypatch.setenv("SVF_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("SVF_LIF_AUTOTUNE", raising=False)
    autotune.clear()
    old = lif_backends.set_lif_backend("auto")
    yield tmp_path
    lif_backends.set_lif_backend(old)
    autotune.clear()


def _fake_timer(monkeypatch, ms: dict[str, float]) -> list[str]:
    """Backend ``name`` takes ``ms[name]``; returns the list of measured backends."""
    calls: list[str] = []

    def fake(name, x, g, p):
        calls.append(name)
        return ms[name] / 1e3
    monkeypatch.setattr(autotune, "_time_backend", fake)
    return calls


def test_auto_picks_the_faster_once_per_key(fresh, monkeypatch):
    calls = _fake_timer(monkeypatch, {"native": 5.0, "torch": 1.0})
    x = torch.randn(4, 3, 50)
    assert lif_backends.lif_backend_for(x) == "torch"
    assert lif_backends.lif_backend_for(torch.randn(4, 3, 60)) == "torch"  # same class: cached
    assert sorted(calls) == ["native", "torch"]
    lif_backends.lif_backend_for(torch.randn(8, 3, 50))  # another T: another measurement
    assert len(calls) == 4
    calls.clear()
    _fake_timer(monkeypatch, {"native": 1.0, "torch": 5.0})
    assert lif_backends.lif_backend_for(torch.randn(4, 1000, 50)) == "native"


def test_cache_round_trip(fresh, monkeypatch):
    calls = _fake_timer(monkeypatch, {"native": 5.0, "torch": 1.0})
    x = torch.randn(4, 3, 50)
    assert lif_backends.lif_backend_for(x) == "torch"
    data = json.loads((fresh / "lif_autotune.json").read_text())
    (key, entry), = data["entries"].items()
    assert key == autotune.key_for(x) and entry["backend"] == "torch"
    assert "threads 1" in key and torch.__version__ in key
    autotune.clear()  # a new process: the file answers, nothing is measured
    calls.clear()
    assert lif_backends.lif_backend_for(x) == "torch"
    assert calls == [] and autotune.choices()[key]["source"] == "disk"
    torch.set_num_threads(2)  # another thread count is another key
    lif_backends.lif_backend_for(x)
    assert len(calls) == 2 and len(json.loads((fresh / "lif_autotune.json").read_text())["entries"]) == 2


def test_forced_backend_wins_over_cache(fresh, monkeypatch):
    _fake_timer(monkeypatch, {"native": 5.0, "torch": 1.0})
    x = torch.randn(4, 3, 50)
    assert lif_backends.lif_backend_for(x) == "torch"
    lif_backends.set_lif_backend("native")
    assert lif_backends.lif_backend_for(x) == "native"


def test_autotune_off_takes_native_without_measuring(fresh, monkeypatch):
    calls = _fake_timer(monkeypatch, {"native": 5.0, "torch": 1.0})
    monkeypatch.setenv("SVF_LIF_AUTOTUNE", "0")
    assert lif_backends.lif_backend_for(torch.randn(4, 3, 50)) == "native"
    assert calls == [] and not (fresh / "lif_autotune.json").exists()


def test_no_measuring_under_graph_capture(fresh, monkeypatch):
    calls = _fake_timer(monkeypatch, {"native": 5.0, "torch": 1.0})
    monkeypatch.setattr(lif_backends, "graph_capture", lambda: True)
    assert lif_backends.lif_backend_for(torch.randn(4, 3, 50)) == "torch"
    assert calls == []


def test_real_measurement_is_available_backend_and_keeps_rng_and_spikes(fresh):
    x = torch.randn(4, 2, 300) * 1.5 + 0.7
    torch.manual_seed(1)
    state = torch.get_rng_state()
    choice = lif_backends.lif_backend_for(x)
    assert torch.equal(torch.get_rng_state(), state)  # measuring used its own generator
    assert choice in ("native", "torch")
    assert lif_backends.available_lif_backends()[choice] == "ok"
    (entry,) = autotune.choices().values()
    assert entry["native_ms"] > 0 and entry["torch_ms"] > 0
    s = lif_multistep(x, LIFParams())
    for forced in ("native", "torch"):
        lif_backends.set_lif_backend(forced)
        assert torch.equal(lif_multistep(x, LIFParams()), s)


def test_unreadable_cache_file_is_ignored(fresh, monkeypatch):
    (fresh / "lif_autotune.json").write_text("{not json")
    _fake_timer(monkeypatch, {"native": 1.0, "torch": 5.0})
    assert lif_backends.lif_backend_for(torch.randn(4, 3, 50)) == "native"
    assert json.loads((fresh / "lif_autotune.json").read_text())["version"] == 1
