"""deploy.integer, the NumPy side: fixed-point LIF hand cases, the integer attention cores
against the float forms, operation counts by hand, and a runner that imports no torch."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from spikevideoformer.deploy.integer.counts import attention_ops, conv_ops, fan_map
from spikevideoformer.deploy.integer.fixed_point import (
    decay_constant, div_round_half_even, lif_int, rdiv,
)
from spikevideoformer.deploy.integer.runner import attention_int
from spikevideoformer.layers import LIFParams, lif_multistep
from spikevideoformer.layers.attention import dot_linear, from_tokens, hamming_linear, to_tokens

RUNNER = Path(__file__).resolve().parents[1] / "src/spikevideoformer/deploy/integer/runner.py"


def _lif(x, **kw):
    return lif_int(np.asarray(x, dtype=np.int64).reshape(-1, 1), **kw)


# --------------------------------------------------------------------------- fixed point
def test_decay_constant_and_rounding():
    assert decay_constant(2.0) == (1, 1) and decay_constant(4.0) == (1, 2)
    m, s = decay_constant(3.0)
    assert abs(m / 2 ** s - 1 / 3) < 2 ** -16
    # round half up: 2.5 -> 3, -2.5 -> -2, 1.5 -> 2
    assert rdiv(np.array([5, -5, 3, 4]), 1, 1).tolist() == [3, -2, 2, 2]
    # ties to even, like torch.round: 6/4 = 1.5 -> 2, 10/4 = 2.5 -> 2, -6/4 -> -2
    assert div_round_half_even(np.array([6, 10, -6, 7, 9]), 4).tolist() == [2, 2, -2, 2, 2]


def test_decay_by_hand():
    # H_t = V + round((X - V) / 2): 5, 5 + round(2.5) = 8, 8 + round(1) = 9; never fires
    s, peak = _lif([10, 10, 10], theta=100)
    assert s.ravel().tolist() == [0, 0, 0] and peak == 9


def test_ties_at_threshold_fire_and_hard_reset():
    s, _ = _lif([20, 19, 18], theta=10, temporal_state=False)   # H = 10, 10 (9.5 up), 9
    assert s.ravel().tolist() == [1, 1, 0]
    s, peak = _lif([20, 4, 20], theta=10)      # H: 10 fire -> V 0; 2; 2 + 9 = 11 fire
    assert s.ravel().tolist() == [1, 0, 1] and peak == 11


def test_soft_reset_subtracts_the_threshold():
    s, _ = _lif([40, 0, 0], theta=10, soft_reset=True, reset_sub=np.array([10]))
    # H 20 fire -> V 10; H 10 + round(-5) = 5 ... -> 5 < 10: no; then 5 + round(-2.5) = 3
    assert s.ravel().tolist() == [1, 0, 0]
    s, _ = _lif([40, 40], theta=10, soft_reset=True, reset_sub=np.array([10]))
    assert s.ravel().tolist() == [1, 1]  # V 10, H 10 + 15 = 25


def test_integer_lif_clipping_and_ties():
    u = np.array([4])
    s, _ = _lif([200], unit=u, spike_max=4)          # H 100 -> 25 units -> clipped to 4
    assert s.ravel().tolist() == [4]
    s, _ = _lif([12, 20], unit=u, spike_max=4, temporal_state=False)  # 6/4=1.5->2, 10/4=2.5->2
    assert s.ravel().tolist() == [2, 2]
    s, _ = _lif([-40], unit=u, spike_max=4)          # negative -> 0
    assert s.ravel().tolist() == [0]
    # the membrane keeps what was not emitted: H 100 - 4*4 = 84, then 84 + round(-42) = 42 -> 10 -> 4
    s, peak = _lif([200, 0], unit=u, spike_max=4)
    assert s.ravel().tolist() == [4, 4] and peak == 100


@pytest.mark.parametrize("kw", [dict(), dict(soft_reset=True), dict(spike_max=4),
                                dict(decay_input=False), dict(temporal_state=False)])
def test_fixed_point_equals_float_lif_on_representable_inputs(kw):
    """Inputs on a grid 2^T membrane units wide: T halvings keep the float membrane on the
    membrane grid (2^-F), so no rounding happens on either side."""
    F, T = 10, 5
    g = np.random.default_rng(0)
    xi = g.integers(-10, 90, size=(T, 64)).astype(np.int64) * 2 ** T      # membrane units
    p = LIFParams(**kw)
    ref = lif_multistep(torch.from_numpy(xi / 2 ** F), p).numpy()
    ref = np.rint(ref * p.spike_max)
    th = np.array([2 ** F])
    s, _ = lif_int(xi, theta=th, unit=th, spike_max=p.spike_max, tau=decay_constant(p.tau),
                   decay_input=p.decay_input, soft_reset=p.soft_reset, reset_sub=th,
                   temporal_state=p.temporal_state)
    assert ref.any() and (s == ref).all()


# --------------------------------------------------------------------------- attention cores
@pytest.mark.parametrize("grouping", ["joint", "spatial", "temporal"])
@pytest.mark.parametrize("kind,dn", [("hamming", 1), ("hamming", 4), ("dot", 1), ("dot", 4)])
def test_integer_attention_equals_float_form(grouping, kind, dn):
    g = np.random.default_rng(1)
    q, k, v = (g.integers(0, dn + 1, size=(3, 8, 2, 3)).astype(np.uint8) for _ in range(3))
    got = attention_int(q, k, v, heads=2, grouping=grouping, kind=kind, dn=dn)
    core = hamming_linear if kind == "hamming" else dot_linear
    tq, tk, tv = (to_tokens(torch.from_numpy(z / dn).unsqueeze(1), 2, grouping) for z in (q, k, v))
    ref = from_tokens(core(tq, tk, tv), (3, 1, 8, 2, 3), grouping)[:, 0].numpy()
    assert np.abs(got).max() > 0
    assert np.array_equal(got, np.rint(ref * dn ** 3).astype(np.int64))


# --------------------------------------------------------------------------- counts
def test_fan_map_by_hand():
    assert fan_map(3, 3, 3, 1, 1).tolist() == [[4, 6, 4], [6, 9, 6], [4, 6, 4]]
    assert fan_map(4, 4, 3, 2, 1).tolist() == [[1, 2, 1, 1], [2, 4, 2, 2], [1, 2, 1, 1], [1, 2, 1, 1]]


def test_conv_counts_by_hand_and_by_scatter():
    x = np.zeros((2, 1, 3, 3), dtype=np.uint8)
    x[0, 0, 0, 0] = 1          # corner: 4 outputs
    x[0, 0, 1, 1] = 2          # centre, value 2: 2 x 9 outputs
    x[1, 0, 0, 1] = 1          # edge: 6
    assert conv_ops(x, 5, 1, 3, 1, 1, spike=True).tolist() == [(4 + 18) * 5, 6 * 5]
    assert conv_ops(x, 5, 1, 3, 1, 1, spike=False).tolist() == [49 * 5] * 2   # 49 in-bounds taps
    # a literal event-driven scatter of a strided conv adds exactly conv_ops additions
    g = np.random.default_rng(0)
    s = (g.random((2, 3, 7, 6)) < 0.3).astype(np.uint8) * g.integers(1, 4, (2, 3, 7, 6)).astype(np.uint8)
    k, st, pad, cout = 3, 2, 1, 4
    ho, wo = (7 + 2 * pad - k) // st + 1, (6 + 2 * pad - k) // st + 1
    adds = np.zeros(2, dtype=np.int64)
    for t, c, i, j in zip(*np.nonzero(s)):
        for oy in range(ho):
            for ox in range(wo):
                if 0 <= i - (oy * st - pad) < k and 0 <= j - (ox * st - pad) < k:
                    adds[t] += int(s[t, c, i, j]) * cout
    assert conv_ops(s, cout, 1, k, st, pad, spike=True).tolist() == adds.tolist()


def test_attention_counts_by_hand():
    q = np.array([[[[1]], [[0]], [[1]], [[1]]]], dtype=np.uint8)      # T=1, C=4, 1x1; 2 heads, d=2
    v = np.array([[[[0]], [[1]], [[1]], [[0]]]], dtype=np.uint8)
    kv, qkv = attention_ops(q, v, heads=2, kind="dot", dn=1)
    assert kv.tolist() == [2 * 2] and qkv.tolist() == [3 * 2]
    kv, qkv = attention_ops(q, v, heads=2, kind="hamming", dn=1)      # |2q-1| = 1 everywhere
    assert qkv.tolist() == [4 * 2]
    q4 = np.array([[[[0]], [[2]], [[3]], [[4]]]], dtype=np.uint8)       # |2k - 4| = 4, 0, 2, 4
    assert attention_ops(q4, v, heads=2, kind="hamming", dn=4)[1].tolist() == [10 * 2]


# --------------------------------------------------------------------------- no torch
def test_runner_imports_no_torch(tmp_path):
    """The runner module, loaded by path with torch made unimportable, runs a tiny graph."""
    code = f"""
import sys, importlib.util
import numpy as np
sys.modules['torch'] = None
spec = importlib.util.spec_from_file_location('svf_runner', {str(RUNNER)!r})
r = importlib.util.module_from_spec(spec); sys.modules['svf_runner'] = r; spec.loader.exec_module(r)
assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None and m.startswith('torch')]
g = {{"format": "svf-integer", "version": 1,
     "input": {{"channels": 1, "frac_bits": 0, "zero_point": [0], "size": None}},
     "ops": [{{"name": "input", "op": "input", "inputs": [], "output": "input"}},
             {{"name": "c", "op": "conv", "inputs": ["input"], "output": "c", "params": {{"weight": "w"}},
              "attrs": {{"stride": 1, "padding": 0, "groups": 1, "input": "real", "kind": "conv", "stage": "stem"}}}},
             {{"name": "p", "op": "pool", "inputs": ["c"], "output": "p", "attrs": {{}}}},
             {{"name": "s", "op": "time_sum", "inputs": ["p"], "output": "s", "attrs": {{}}}}],
     "output": {{"tensor": "s", "scale": [0.5, 1.0]}}}}
net = r.IntegerGraph(g, {{"w": np.array([[[[1]]], [[[-2]]]], dtype=np.int8)}})
res = r.run(net, np.full((2, 2, 2, 1), 3, dtype=np.uint8))
assert res.accumulators.tolist() == [24, -48], res.accumulators
assert res.logits.tolist() == [6.0, -24.0] and res.counts.macs == 16
print('ok')
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
