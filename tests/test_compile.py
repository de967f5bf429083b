"""``torch.compile`` works on the spiking model: under dynamo the LIF takes the traceable torch
backend (``lif_backends.graph_capture``), the C kernel is never traced, outputs equal eager."""
import copy
import time

import pytest
import torch
import torch.nn.functional as F

from helpers import assert_fires, lively_bn
from spikevideoformer.layers import _lif_autotune, lif_backends
from spikevideoformer.layers.neuron import LIF
from spikevideoformer.models.registry import create_model

TINY = dict(num_classes=5, embed_dim=(8, 16, 16, 24), heads=2, depths=(1, 1))


def _model():
    torch.manual_seed(0)
    return lively_bn(create_model("svf_tiny", **TINY))


def test_lif_compiled_training_matches_eager(monkeypatch):
    """Dynamo + AOT autograd through the LIF's autograd.Function; no measuring while tracing."""
    monkeypatch.setattr(_lif_autotune, "_time_backend", lambda *a: pytest.fail("measured"))
    monkeypatch.setattr(_lif_autotune, "_MEM", {})
    seen = []
    real = lif_backends.lif_backend_for

    def spy(x, p=None):
        seen.append(lif_backends.graph_capture())
        return real(x, p)
    lif = LIF()
    x = (torch.randn(4, 3, 20) * 1.5 + 0.7).requires_grad_()
    g = torch.randn(4, 3, 20)

    def f(x):
        return (lif(x * 2.0) * g).sum()
    monkeypatch.setattr(_lif_autotune, "autotune_enabled", lambda: False)
    f(x).backward()
    ge, x.grad = x.grad.clone(), None
    monkeypatch.setattr(_lif_autotune, "autotune_enabled", lambda: True)
    monkeypatch.setattr(lif_backends, "lif_backend_for", spy)
    torch._dynamo.reset()
    out = torch.compile(f, backend="aot_eager", fullgraph=True)(x)
    out.backward()
    assert seen and all(seen)  # dispatch saw the graph capture: torch backend, no kernel
    torch.testing.assert_close(x.grad, ge, rtol=1e-5, atol=1e-6)


def test_compiled_model_inference_equals_eager_dynamo():  # ~5 s of dynamo tracing
    """svf_tiny through dynamo (backend "eager": graph capture without code generation)."""
    m = _model().eval()
    video = torch.randn(1, 2, 3, 32, 32)
    with torch.no_grad():
        assert_fires(m, lambda: m(video))
        ref = m(video)
        torch._dynamo.reset()
        out = torch.compile(m, backend="eager", fullgraph=True)(video)  # one graph: no break
    assert torch.equal(out, ref)


def _train_step_grads(model, video, labels):
    F.cross_entropy(model(video), labels).backward()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compiled_model_matches_eager(backend):
    """Inference output equal and one training step's gradients close (inductor: C++ codegen)."""
    m = _model()
    video, labels = torch.randn(2, 2, 3, 32, 32), torch.tensor([1, 3])
    mc = copy.deepcopy(m)
    torch._dynamo.reset()
    cm = torch.compile(mc, backend=backend)
    _train_step_grads(m.train(), video, labels)
    _train_step_grads(cm.train(), video, labels)
    scale = max(p.grad.abs().max() for p in m.parameters() if p.grad is not None)
    for (n, a), b in zip(m.named_parameters(), mc.parameters()):
        if a.grad is not None:  # biases before BN have ~0 true gradients: absolute tolerance
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-3, atol=1e-5 * float(scale), msg=n)
    m.eval(), cm.eval()
    with torch.no_grad():
        assert_fires(m, lambda: m(video))
        t = time.perf_counter()
        out = cm(video)
        assert time.perf_counter() - t < 600
        ref = m(video)
    if backend == "aot_eager":
        assert torch.equal(out, ref)
    else:  # inductor fuses the float ops before the spikes: logits agree to rounding
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
