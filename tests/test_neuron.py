"""LIF / Integer-LIF: parity with SpikingJelly and with plain loops written here (SPEC §1)."""
import pytest
import torch

from spikevideoformer.layers import LIF, LIFParams, lif_multistep, lif_reference


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
