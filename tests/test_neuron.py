"""LIF / Integer-LIF: parity with SpikingJelly and with plain loops written here (docs/design.md §1)."""
import pytest
import torch

from spikevideoformer.layers import LIF, LIFParams, lif_multistep, lif_reference, lif_backends


def loop_lif(x, tau=2.0, v_th=1.0, v_reset=0.0, soft=False, d=1):
    """Independent forward loop (no autograd tricks) for the spike values."""
    v = torch.full_like(x[0], v_reset)
    out = []
    for t in range(x.shape[0]):
        h = v + (x[t] - (v - v_reset)) / tau
        if d == 1:
            s = (h >= v_th).float()
            v = h - v_th * s if soft else h * (1 - s) + v_reset * s
            out.append(s)
        else:
            s = torch.clamp(torch.round(h), 0, d)
            v = h - s
            out.append(s / d)
    return torch.stack(out)


def test_matches_spikingjelly_forward_backward():
    sj = pytest.importorskip("spikingjelly.activation_based.neuron")
    from spikingjelly.activation_based import functional
    x = (torch.randn(8, 4, 16, 5) * 1.5 + 0.7).requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    ref = sj.LIFNode(tau=2.0, detach_reset=True, step_mode="m")
    functional.reset_net(ref)
    y_ref = ref(x2)
    y = LIF()(x)
    assert torch.equal(y, y_ref)
    g = torch.randn_like(y)
    (y * g).sum().backward()
    (y_ref * g).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-5, atol=1e-6)
    assert x.grad.abs().sum() > 0


# Integer-LIF (d > 1) always subtracts the fired amount, so it has no hard/soft variant.
@pytest.mark.parametrize("soft,d", [(False, 1), (True, 1), (False, 2), (False, 4)])
def test_forward_matches_plain_loop(soft, d):
    x = torch.randn(12, 3, 7) * 2 + 0.5
    y = LIF(soft_reset=soft, spike_max=d)(x)
    assert torch.equal(y, loop_lif(x, soft=soft, d=d))
    if d > 1:
        assert set((y * d).unique().tolist()) <= set(range(d + 1))
        assert (y * d > 1).any()  # integer spikes actually occur


@pytest.mark.parametrize("T", [1, 2, 7, 64])
@pytest.mark.parametrize(
    "kw", [dict(), dict(soft_reset=True), dict(detach_reset=False), dict(spike_max=4),
           dict(v_reset=-0.2, v_th=0.7), dict(soft_reset=True, detach_reset=False),
           dict(decay_input=False), dict(spike_max=3, detach_reset=False)])
def test_fused_equals_reference_forward_backward(T, kw):
    p = LIFParams(**kw)
    x = (torch.randn(T, 2, 33) * 2 + 0.5).requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    y, y2 = lif_multistep(x, p), lif_reference(x2, p)
    assert torch.equal(y, y2)
    g = torch.randn_like(y)
    (y * g).sum().backward()
    (y2 * g).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-5, atol=1e-6)


def test_state_is_local_to_a_call():
    lif = LIF()
    x = torch.rand(4, 3, 10) * 2
    assert torch.equal(lif(x), lif(x))
    # a sample's spikes do not depend on the rest of the batch
    assert torch.equal(lif(x)[:, :1], lif(x[:, :1]))


def test_tie_fires_and_known_rate():
    # constant input 1.0, tau 2: h = 0.5, 0.75, 0.875, ... never reaches 1 → silent
    assert LIF()(torch.ones(10, 1)).sum() == 0
    # constant input 2.0: h = 1.0 at t=0 (tie fires), reset, repeat → fires every step
    assert LIF()(torch.full((10, 1), 2.0)).sum() == 10


def test_no_temporal_state_resets_each_frame():
    x = torch.full((6, 1), 1.5)  # h0 = 0.75 (silent); with state h1 = 1.125 fires
    assert LIF()(x).sum() > 0
    assert LIF(temporal_state=False)(x).sum() == 0


@pytest.mark.parametrize("bad", [dict(tau=1.0), dict(v_th=0), dict(spike_max=0), dict(alpha=-1)])
def test_bad_params(bad):
    with pytest.raises(ValueError):
        LIF(**bad)


def test_bad_input():
    with pytest.raises(TypeError, match="floating"):
        LIF()(torch.ones(3, 2, dtype=torch.long))


# ----------------------------------------------------------------- backends (native C / torch)
from spikevideoformer.layers import _lif_native  # noqa: E402

BACKENDS = ["torch"] + (["native"] if _lif_native._native_lib() is not None else [])
VARIANTS = [dict(), dict(soft_reset=True), dict(detach_reset=False), dict(spike_max=4),
            dict(v_reset=-0.2, v_th=0.7), dict(soft_reset=True, detach_reset=False),
            dict(decay_input=False), dict(spike_max=3, detach_reset=False),
            dict(decay_input=False, v_reset=0.3, spike_max=2), dict(tau=3.0, alpha=2.0),
            dict(v_reset=0.1, detach_reset=False), dict(soft_reset=True, decay_input=False),
            dict(temporal_state=False), dict(temporal_state=False, spike_max=2)]


@pytest.fixture(params=BACKENDS)
def backend(request):
    old = lif_backends.set_lif_backend(request.param)
    yield request.param
    lif_backends.set_lif_backend(old)


@pytest.mark.parametrize("T", [1, 3, 16, 64])
@pytest.mark.parametrize("kw", VARIANTS)
def test_backend_equals_reference(backend, T, kw):
    p = LIFParams(**kw)
    x = (torch.randn(T, 2, 3, 37) * 2 + 0.5).requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    assert lif_backends.lif_backend_for(x, p) == backend
    y, y2 = lif_multistep(x, p), lif_reference(x2, p)
    assert torch.equal(y, y2)  # bit-exact spikes
    with torch.no_grad():  # inference path (no saved membrane) is bit-exact too
        assert torch.equal(lif_multistep(x, p), y2)
    g = torch.randn_like(y)
    (y * g).sum().backward()
    (y2 * g).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-5, atol=1e-6)


def test_backends_agree_on_large_threaded_input():
    # large enough for the native kernel to split the neurons over threads
    x = (torch.randn(8, 4, 64, 32, 32) * 1.5 + 0.7).requires_grad_()
    g = torch.randn_like(x)
    out = {}
    for b in BACKENDS:
        old = lif_backends.set_lif_backend(b)
        try:
            x.grad = None
            y = lif_multistep(x, LIFParams())
            y.backward(g)
            out[b] = (y.detach(), x.grad.clone())
        finally:
            lif_backends.set_lif_backend(old)
    y0, g0 = out["torch"]
    for y, gx in out.values():
        assert torch.equal(y, y0)
        torch.testing.assert_close(gx, g0, rtol=1e-5, atol=1e-6)


def test_non_contiguous_and_other_dtypes(backend):
    base = torch.randn(5, 7, 3) * 2 + 0.5
    x = base.transpose(1, 2)  # [5, 3, 7] non-contiguous
    assert torch.equal(lif_multistep(x, LIFParams()), lif_reference(x))
    xd = x.double().requires_grad_()
    xd2 = xd.detach().clone().requires_grad_()
    assert lif_backends.lif_backend_for(xd) == "torch"  # float64 always uses the torch backend
    y, y2 = lif_multistep(xd, LIFParams()), lif_reference(xd2)
    assert torch.equal(y, y2)
    y.sum().backward()
    y2.sum().backward()
    torch.testing.assert_close(xd.grad, xd2.grad)


def test_tensor_threshold_uses_torch_backend():
    th = torch.tensor([0.5, 1.0, 1.5]).view(3, 1)
    p = LIFParams(v_th=th)
    x = (torch.randn(6, 3, 4) * 2 + 0.5).requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    assert lif_backends.lif_backend_for(x, p) == "torch"
    y, y2 = lif_multistep(x, p), lif_reference(x2, p)
    assert torch.equal(y, y2)
    y.sum().backward()
    y2.sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-5, atol=1e-6)


def test_saves_only_the_membrane_and_reuses_it_for_the_gradient(backend):
    x = torch.randn(4, 2, 50, requires_grad=True)
    y = lif_multistep(x, LIFParams())
    saved = y.grad_fn.saved_tensors
    assert len(saved) == 1 and saved[0].shape == x.shape and saved[0].dtype == x.dtype
    ptr = saved[0].data_ptr()
    del saved  # (a live reference would make AccumulateGrad copy the gradient)
    y.backward(torch.ones_like(y))
    assert x.grad.data_ptr() == ptr  # the gradient was written into the saved buffer


def test_second_backward_through_retained_graph_raises(backend):
    x = torch.randn(4, 2, 5, requires_grad=True)
    y = lif_multistep(x, LIFParams())
    y.sum().backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="twice"):
        y.sum().backward()


def test_create_graph_keeps_the_membrane(backend):
    x = (torch.randn(4, 2, 5) * 2).requires_grad_()
    y = lif_multistep(x, LIFParams())
    (g1,) = torch.autograd.grad(y.sum(), x, create_graph=True, retain_graph=True)
    (g2,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(g1, g2)


def test_backend_selection_api():
    assert lif_backends.get_lif_backend() in lif_backends.LIF_BACKENDS
    with pytest.raises(ValueError, match="backend"):
        lif_backends.set_lif_backend("fortran")
    avail = lif_backends.available_lif_backends()
    assert avail["torch"] == avail["reference"] == "ok"
    assert set(avail) == {"reference", "torch", "native", "triton"}


def test_compact_spike_storage_is_exact_and_smaller():
    import copy
    from spikevideoformer.layers.neuron import compact_spike_storage
    from spikevideoformer.models import create_model
    m = create_model("svf_tiny", num_classes=4)
    state = copy.deepcopy(m.state_dict())  # RepConv padding reads BN running stats
    video, target = torch.randn(2, 3, 3, 32, 32), torch.tensor([1, 3])

    def run(compact):
        m.load_state_dict(state)
        m.zero_grad()
        packed = []

        def pack(t):
            packed.append(t)
            return t
        if compact:
            with compact_spike_storage() as c:
                loss = torch.nn.functional.cross_entropy(m(video), target)
                n = len(c._cache)
        else:
            loss = torch.nn.functional.cross_entropy(m(video), target)
            n = 0
        loss.backward()
        return loss.item(), [p.grad.clone() for p in m.parameters()], n

    l1, g1, _ = run(False)
    l2, g2, n_packed = run(True)
    assert l1 == l2 and n_packed > 50
    assert all(torch.equal(a, b) for a, b in zip(g1, g2))
    with compact_spike_storage(False) as c:  # the Trainer's optim.compact_spikes: false
        m(video).sum().backward()
    assert not c._cache and c._hooks is None


def test_trainer_default_compacts_spikes():
    from spikevideoformer.engine.config import OptimConfig
    assert OptimConfig().compact_spikes is True


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
def test_jit_trace_uses_traceable_ops():
    lif = LIF()
    x = torch.randn(4, 2, 6) * 2 + 0.5
    traced = torch.jit.trace(lif, x)
    x2 = torch.randn(4, 2, 6) * 2 + 0.5  # another input: the trace must compute, not replay
    assert torch.equal(traced(x2), lif_reference(x2))


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_native_lif_threads_are_joined_before_fork():
    """A forked child (DataLoader worker) must not inherit the native LIF thread pool."""
    import os
    import threading

    if _lif_native._native_lib() is None:
        pytest.skip("no C compiler: the native backend is not in use")
    n = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x = torch.randn(4, 1 << 17) + 1.0
        s, _ = _lif_native._native_forward(x, LIFParams(), store_h=False)
        assert 0.01 < s.mean().item() < 0.99  # the neurons fire
        assert any(t.name.startswith("svf-lif") for t in threading.enumerate())
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        assert not any(t.name.startswith("svf-lif") and t.is_alive() for t in threading.enumerate())
        s2, _ = _lif_native._native_forward(x, LIFParams(), store_h=False)  # pool comes back
        assert torch.equal(s, s2)
    finally:
        torch.set_num_threads(n)


def test_native_backward_flushes_subnormal_gradients():
    """Surrogate tails times small upstream gradients reach ~1e-41; subnormal floats slow the
    LIF backward and every conv backward after it (x2 on a training step), so the native kernel
    flushes them to zero (FTZ/DAZ inside the call); normal gradients are unchanged."""
    from spikevideoformer.layers import _lif_native, set_lif_backend

    if _lif_native._native_lib() is None:
        pytest.skip("no C compiler: the native backend is not in use")
    tiny = 1.1754944e-38  # smallest normal float32
    x = torch.cat([torch.full((4, 1, 256), -24.0), torch.randn(4, 1, 256) + 1.0], dim=2)
    g = torch.cat([torch.full((4, 1, 256), 1e-3), torch.randn(4, 1, 256)], dim=2)
    grads = {}
    try:
        for backend in ("torch", "native"):
            set_lif_backend(backend)
            xi = x.clone().requires_grad_()
            y = LIF()(xi)
            (y * g).sum().backward()
            grads[backend] = xi.grad
    finally:
        set_lif_backend("auto")
    sub = lambda t: int(((t != 0) & (t.abs() < tiny)).sum())  # noqa: E731
    assert sub(grads["torch"]) > 0  # the case does produce subnormals without the flush
    assert sub(grads["native"]) == 0
    torch.testing.assert_close(grads["native"], grads["torch"], rtol=1e-5, atol=1e-30)
    assert grads["native"][..., 256:].abs().sum() > 0
