"""Attention cores: linear form equals the explicit n×n form; groupings; scales (docs/design.md §3)."""
import pytest
import torch

from spikevideoformer.layers import (
    GROUPINGS, SpikeAttention, NeuronSpec, dot_explicit, dot_linear, from_tokens,
    hamming_explicit, hamming_linear, resolve_scale, to_tokens,
)
from spikevideoformer.layers.blocks import AttentionBranch


def spikes(*shape, p=0.3):
    return (torch.rand(*shape) < p).float()


@pytest.mark.parametrize("n,d", [(5, 4), (64, 8), (200, 10)])
def test_hamming_linear_equals_explicit(n, d):
    q, k, v = spikes(3, n, d), spikes(3, n, d), spikes(3, n, d)
    lin = hamming_linear(q, k, v) / (2 * d)
    torch.testing.assert_close(lin, hamming_explicit(q, k, v), rtol=0, atol=1e-5)


def test_hamming_similarity_definition():
    q = torch.tensor([[1.0, 0, 1, 1]])
    k = torch.tensor([[1.0, 1, 0, 1]])  # 2 mismatches of 4 → similarity 0.5
    v = torch.ones(1, 1)
    assert hamming_explicit(q, k, v).item() == pytest.approx(0.5 - 0.5)
    assert (hamming_linear(q, k, v) / 8).item() == pytest.approx(0.0)


def test_dot_linear_equals_explicit():
    q, k, v = spikes(2, 50, 8), spikes(2, 50, 8), spikes(2, 50, 8)
    torch.testing.assert_close(dot_linear(q, k, v), dot_explicit(q, k, v))


@pytest.mark.parametrize("grouping", GROUPINGS)
def test_tokens_round_trip(grouping):
    x = torch.randn(3, 2, 16, 4, 5)
    y = to_tokens(x, 4, grouping)
    assert torch.equal(from_tokens(y, x.shape, grouping), x)


def test_joint_is_one_attention_over_all_thw_tokens():
    T, B, C, H, W, h = 3, 2, 16, 4, 4, 2
    q, k, v = (spikes(T, B, C, H, W) for _ in range(3))
    out = from_tokens(hamming_linear(*(to_tokens(z, h, "joint") for z in (q, k, v))),
                      q.shape, "joint")
    # explicit: flatten each sample's T*H*W tokens in (t, h, w) order, heads = channel chunks
    for b in range(B):
        for head in range(h):
            sl = slice(head * C // h, (head + 1) * C // h)
            tok = [z[:, b, sl].permute(0, 2, 3, 1).reshape(T * H * W, C // h) for z in (q, k, v)]
            ref = hamming_explicit(*tok) * (2 * C // h)
            got = out[:, b, sl].permute(0, 2, 3, 1).reshape(T * H * W, C // h)
            torch.testing.assert_close(got, ref, rtol=0, atol=1e-4)


def test_spatial_attends_within_frames_only():
    T, B, C, H, W = 3, 1, 8, 4, 4
    q, k, v = (spikes(T, B, C, H, W) for _ in range(3))
    out = from_tokens(dot_linear(*(to_tokens(z, 1, "spatial") for z in (q, k, v))), q.shape, "spatial")
    v2 = v.clone()
    v2[1] = 1 - v2[1]  # change frame 1 only
    out2 = from_tokens(dot_linear(*(to_tokens(z, 1, "spatial") for z in (q, k, v2))), q.shape, "spatial")
    assert torch.equal(out[0], out2[0]) and torch.equal(out[2], out2[2])
    assert not torch.equal(out[1], out2[1])


def test_temporal_attends_within_positions_only():
    T, B, C, H, W = 4, 1, 8, 3, 3
    q, k, v = (spikes(T, B, C, H, W) for _ in range(3))
    f = lambda vv: from_tokens(dot_linear(*(to_tokens(z, 1, "temporal") for z in (q, k, vv))),
                               q.shape, "temporal")
    v2 = v.clone()
    v2[:, :, :, 1, 1] = 1 - v2[:, :, :, 1, 1]
    a, b = f(v), f(v2)
    mask = torch.zeros(H, W, dtype=torch.bool)
    mask[1, 1] = True
    assert torch.equal(a[..., ~mask], b[..., ~mask])
    assert not torch.equal(a[..., mask], b[..., mask])


def test_resolve_scale():
    assert resolve_scale("1/(2C)", 64, 8) == ("div", 128.0)
    assert resolve_scale("1/8", 64, 8) == ("mul", 0.125)
    assert resolve_scale("1/sqrt(d)", 64, 16) == ("mul", 0.25)
    assert resolve_scale(0.3, 64, 8) == ("mul", 0.3)
    with pytest.raises(ValueError, match="unknown attention scale"):
        resolve_scale("1/4", 64, 8)
    with pytest.raises(ValueError):
        resolve_scale(-1.0, 64, 8)


@pytest.mark.parametrize("attention", ["hamming", "dot", "softmax"])
@pytest.mark.parametrize("grouping", ["joint", "spatial", "temporal", "factorized"])
def test_attention_module_shapes_and_params(attention, grouping):
    neuron = NeuronSpec(kind="relu" if attention == "softmax" else "lif")
    m = SpikeAttention(16, neuron, heads=4, attention=attention, grouping=grouping)
    x = torch.randn(3, 2, 16, 4, 4)
    assert m(x).shape == x.shape
    cores = 2 if grouping == "factorized" else 1
    n_rep = sum(1 for n, _ in m.named_modules() if n.endswith("_conv"))
    assert n_rep == 3 * cores + 1  # q/k/v per core + proj → 4D² (joint) or 7D² (factorized)
    # explicit parts, None where a variant has none; the factorized design's second branch
    assert (m.temporal is not None) == (grouping == "factorized")
    assert (m.attn_bn is not None) == (attention == "hamming")
    assert (m.q_lif is None) == (m.attn_lif is None) == (attention == "softmax")
    if grouping == "factorized":
        assert (m.grouping, m.temporal.grouping) == ("spatial", "temporal")
        assert isinstance(m.temporal, AttentionBranch) and m.temporal.q_conv is not m.q_conv
