"""One parameter object, the readable equations, the reference backend and the one graph-capture
check of the neuron code (docs/design.md §1)."""
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from helpers import assert_fires, lively_bn
from spikevideoformer.layers import (
    LIF, InferenceLIF, LIFParams, NeuronParams, NeuronSpec, inference_neuron, lif_backends,
    lif_inference, lif_multistep, lif_reference,
)
from spikevideoformer.layers.neuron import charge, fire, reset, sigmoid_surrogate, spike_gradient
from spikevideoformer.models import create_model, make_neuron_spec

SRC = Path(__file__).resolve().parents[1] / "src" / "spikevideoformer"


@pytest.fixture
def backend_reference():
    old = lif_backends.set_lif_backend("reference")
    yield
    lif_backends.set_lif_backend(old)


# ----------------------------------------------------------------- the parameter object
def test_one_parameter_object_under_every_name():
    assert LIFParams is NeuronParams and NeuronSpec is NeuronParams
    p = NeuronParams(spike_max=4, temporal_state=False)
    lif = p.make()
    assert isinstance(lif, LIF) and lif.params is p
    assert lif.spike_max == 4 and lif.temporal_state is False
    assert isinstance(NeuronParams(kind="relu").make(), nn.ReLU)
    assert p.make(v_th=0.5).params == NeuronParams(spike_max=4, temporal_state=False, v_th=0.5)


def test_fields_have_one_type():
    p = NeuronParams(tau=3, v_th=1, v_reset=0, alpha=4, spike_max=2.0, soft_reset=0)
    values = (p.tau, p.v_th, p.v_reset, p.alpha, p.spike_max, p.soft_reset)
    assert values == (3.0, 1.0, 0.0, 4.0, 2, False)
    assert [type(v) for v in (p.tau, p.v_th, p.spike_max, p.soft_reset)] == [float, float, int, bool]
    th = torch.tensor([0.5, 1.0])
    assert NeuronParams(v_th=th).v_th is th  # per-channel thresholds stay tensors


@pytest.mark.parametrize("bad", [dict(kind="gelu"), dict(tau=1.0), dict(v_th=0), dict(spike_max=0),
                                 dict(spike_max=1.5), dict(alpha=0)])
def test_bad_params_raise(bad):
    with pytest.raises(ValueError):
        NeuronParams(**bad)


def test_build_from_kind_dict_or_params():
    assert NeuronParams.build("relu").kind == "relu"
    built = NeuronParams.build({"tau": 3.0, "decay_input": False})
    assert built == NeuronParams(tau=3.0, decay_input=False)
    base = NeuronParams(soft_reset=True)
    built = NeuronParams.build(base, spike_max=4, temporal_state=None)
    assert built == NeuronParams(soft_reset=True, spike_max=4)
    assert make_neuron_spec(base, spike_max=4) == built
    with pytest.raises(ValueError, match="unknown neuron option"):
        NeuronParams.build({"threshold": 1.0})
    with pytest.raises(TypeError):
        NeuronParams.build(3)


def test_lif_module_takes_params_and_fields():
    p = NeuronParams(tau=3.0)
    assert LIF(p).params is p
    assert LIF(p, spike_max=2).params == NeuronParams(tau=3.0, spike_max=2)
    assert LIF(soft_reset=True).params == NeuronParams(soft_reset=True)
    with pytest.raises(ValueError, match="kind"):
        LIF(kind="relu")
    with pytest.raises(TypeError):
        LIF(2.0)


def test_model_neurons_share_the_builders_params():
    m = create_model("svf_tiny", num_classes=2, spike_max=4, temporal_state=False)
    lifs = [x for x in m.modules() if isinstance(x, LIF)]
    assert lifs and all(x.params.spike_max == 4 and not x.params.temporal_state for x in lifs)
    assert m.neuron == NeuronParams(spike_max=4, temporal_state=False)


# ----------------------------------------------------------------- the equations
def test_equations_are_the_design_doc_formulas():
    g = torch.Generator().manual_seed(0)
    x, v = torch.randn(50, generator=g) * 2, torch.randn(50, generator=g)
    p = NeuronParams(v_reset=-0.2, tau=3.0)
    assert torch.equal(charge(x, v, p), v + (x - (v - p.v_reset)) / p.tau)  # (1.1)
    q = NeuronParams(decay_input=False, tau=3.0)
    assert torch.equal(charge(x, v, q), v - v / q.tau + x)  # (1.5)
    h = charge(x, v, p)
    s = fire(h, p)
    assert torch.equal(s, (h >= p.v_th).float())  # (1.2)
    assert torch.equal(reset(h, s, p), h * (1 - s) + p.v_reset * s)  # (1.3)
    soft = NeuronParams(soft_reset=True)
    assert torch.equal(reset(h, s, soft), h - soft.v_th * s)  # (1.4)
    d4 = NeuronParams(spike_max=4)
    k = fire(h * 3, d4)
    assert torch.equal(k, torch.clamp(torch.round(h * 3), 0, 4))  # (1.7)
    assert torch.equal(reset(h * 3, k, d4), h * 3 - k)
    out = torch.empty_like(x)
    assert charge(x, v, p, out=out) is out and torch.equal(out, h)


def test_surrogate_gradients():
    h = torch.linspace(-1, 6, 57)
    p = NeuronParams(alpha=2.0)
    u = h - p.v_th
    assert torch.equal(spike_gradient(h, p), sigmoid_surrogate(u, 2.0))  # (1.6)
    torch.testing.assert_close(sigmoid_surrogate(u, 2.0), torch.func.grad(
        lambda z: torch.sigmoid(2.0 * z).sum())(u))
    ste = spike_gradient(h, NeuronParams(spike_max=4))
    assert torch.equal(ste, ((h > 0) & (h < 4)).float())  # (1.8)


# ----------------------------------------------------------------- reference backend, temporal state
@pytest.mark.parametrize("kw", [dict(), dict(spike_max=4), dict(temporal_state=False)])
def test_model_runs_the_reference_loop(kw, backend_reference):
    torch.manual_seed(0)
    m = lively_bn(create_model("svf_tiny", num_classes=3, **kw)).eval()
    video, target = torch.rand(2, 2, 3, 32, 32) * 2, torch.tensor([0, 2])
    assert lif_backends.lif_backend_for(video) == "reference"
    out = {}
    for backend in ("reference", "auto"):
        lif_backends.set_lif_backend(backend)
        m.zero_grad()
        y = m(video)
        nn.functional.cross_entropy(y, target).backward()
        out[backend] = y.detach(), [p.grad.clone() for p in m.parameters()]
    assert_fires(m, lambda: m(video))
    (y_ref, g_ref), (y, g) = out["reference"], out["auto"]
    assert torch.equal(y, y_ref)  # bit-identical spikes give bit-identical logits
    for a, b in zip(g_ref, g):  # the native kernel rounds its surrogate differently
        assert (a - b).norm() <= 1e-5 * b.norm()


def test_temporal_state_lives_in_the_params():
    x = torch.randn(6, 2, 9) * 2 + 0.7
    p = NeuronParams(temporal_state=False, spike_max=2)
    frames = torch.cat([lif_multistep(x[t:t + 1], NeuronParams(spike_max=2)) for t in range(6)])
    for run in (lif_multistep, lif_reference, lif_inference):
        assert torch.equal(run(x, p), frames), run.__name__
    assert torch.equal(InferenceLIF(p)(x), frames)
    assert InferenceLIF(NeuronParams(), temporal_state=False).temporal_state is False


# ----------------------------------------------------------------- one graph-capture check
def test_one_graph_capture_check(monkeypatch):
    x = torch.randn(4, 2, 6) * 2 + 0.5
    p = NeuronParams()
    used = []
    real = inference_neuron.lif_inference
    monkeypatch.setattr(inference_neuron, "lif_inference", lambda *a: used.append(1) or real(*a))
    assert torch.equal(InferenceLIF(p)(x), lif_reference(x)) and not used  # eager: fast kernels
    monkeypatch.setattr(lif_backends, "graph_capture", lambda: True)
    assert lif_backends.lif_backend_for(x, p) == "torch"
    assert torch.equal(InferenceLIF(p)(x), lif_reference(x)) and used  # captured: plain loop
    pattern = re.compile(r"is_tracing|is_scripting|is_compiling|_dynamo")
    found = [str(f.relative_to(SRC)) for d in ("layers", "deploy") for f in (SRC / d).glob("*.py")
             if pattern.search(f.read_text(encoding="utf-8"))]
    assert found == ["layers/lif_backends.py"]
