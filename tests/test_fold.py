"""deploy.fold: RepConv → FusedRepConv (factorised) or one 3×3 conv, conv+BN → conv, attention scale+BN → LIF threshold.

Exactness is tested in float64: the folded graph rounds differently from the trained one,
and in float32 a membrane within rounding of its threshold can flip a spike (the float32
test below measures how often). In float64 every spike and every logit must agree.
"""
import pytest
import torch
from torch import nn

from helpers import lively_bn
from spikevideoformer import create_model
from spikevideoformer.deploy import (
    InferenceLIF, fold, fold_conv_bn, fold_repconv, is_folded, lif_inference,
)
from spikevideoformer.layers import (
    LIF, LIFParams, NeuronSpec, RepConv, SpikeAttention, lif_multistep,
)
from spikevideoformer.layers.repconv import FusedRepConv, fuse_repconv_bn


# a very small backbone: exactness does not depend on width, and float64 convs are slow
TINY = dict(embed_dim=(8, 16, 16, 24), heads=2, depths=(1, 1))


def _bn(c, cls=nn.BatchNorm2d, seed=0):
    g = torch.Generator().manual_seed(seed)
    bn = cls(c)
    bn.running_mean.copy_(torch.randn(c, generator=g))
    bn.running_var.copy_(torch.rand(c, generator=g) + 0.3)
    bn.weight.data.copy_(torch.randn(c, generator=g))  # both signs
    bn.bias.data.copy_(torch.randn(c, generator=g))
    return bn.eval()


def _spikes(model, x):
    """Logits and every spiking layer's output in spike counts (k for a spike of value k)."""
    rec, handles = {}, []
    for name, m in model.named_modules():
        if isinstance(m, (LIF, InferenceLIF)):
            scale = 1 / m.out_scale if isinstance(m, InferenceLIF) else m.spike_max
            handles.append(m.register_forward_hook(
                lambda mod, i, o, name=name, scale=scale: rec.__setitem__(name, o * scale)))
    with torch.no_grad():
        y = model(x)
    for h in handles:
        h.remove()
    return y, rec


def _compare(a, b):
    ya, sa = a
    yb, sb = b
    assert sa.keys() == sb.keys()
    same = sum(int((sa[k] == sb[k]).sum()) for k in sa)
    total = sum(sa[k].numel() for k in sa)
    return float((ya - yb).abs().max()), same / total


# --------------------------------------------------------------------------- single folds
@pytest.mark.parametrize("conv,bn_cls,shape", [
    (nn.Conv2d(5, 7, 3, padding=1, bias=True), nn.BatchNorm2d, (2, 5, 6, 6)),
    (nn.Conv2d(6, 6, 7, padding=3, groups=6, bias=False), nn.BatchNorm2d, (2, 6, 9, 9)),
    (nn.Conv1d(5, 9, 1), nn.BatchNorm1d, (3, 5, 11)),
])
def test_conv_bn_fold(conv, bn_cls, shape):
    conv = conv.double()
    bn = _bn(conv.out_channels, bn_cls).double()
    x = torch.randn(*shape, dtype=torch.float64)
    weight = conv.weight.detach().clone()
    folded = fold_conv_bn(conv, bn)
    with torch.no_grad():
        assert torch.allclose(folded(x), bn(conv(x)), atol=1e-12, rtol=0)
    assert folded is not conv and torch.equal(conv.weight, weight)  # a new module
    assert folded.bias is not None


def _repconv_case():
    """A float64 RepConv with non-trivial BN statistics, the BN after it, and an input."""
    rep = RepConv(6, 10).double().eval()
    for i, bn in enumerate([rep.body[1].bn, rep.body[2][2]]):
        bn.load_state_dict(_bn(bn.num_features, seed=i + 1).double().state_dict())
    outer = _bn(10, seed=7).double()
    return rep, outer, torch.randn(3, 6, 7, 5, dtype=torch.float64)


def test_repconv_fold_is_one_conv_and_exact():
    rep, outer, x = _repconv_case()
    with torch.no_grad():
        ref = outer(rep(x))
        conv = fold_repconv(rep, outer)
        assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3) and conv.padding == (1, 1)
        assert (conv(x) - ref).abs().max() < 1e-12
        # without the outer BN, and on spikes in float32
        rep32 = rep.float()
        s = (torch.rand(2, 6, 8, 8) < 0.3).float()
        assert torch.allclose(fold_repconv(rep32)(s), rep32(s), atol=1e-5)


def test_repconv_factorised_fold_is_exact_and_cheaper():
    rep, outer, x = _repconv_case()
    seq = nn.Sequential(rep, outer)
    with torch.no_grad():
        ref = seq(x)
        fused = fuse_repconv_bn(seq)  # "auto": 6·6 + 9·6 + 6·10 MACs < 9·6·10
        assert isinstance(fused, FusedRepConv) and not rep.dense_cheaper()
        assert (fused(x) - ref).abs().max() < 1e-12
        assert (fused.to_conv()(x) - ref).abs().max() < 1e-12  # the dense form it equals
        assert isinstance(fuse_repconv_bn(seq, "dense"), nn.Conv2d)
        assert isinstance(fuse_repconv_bn(seq, "factorised"), FusedRepConv)
        assert (fuse_repconv_bn(rep, "factorised")(x) - rep(x)).abs().max() < 1e-12
    assert RepConv(1, 1).dense_cheaper()  # 9 < 1 + 9 + 1
    with pytest.raises(ValueError):
        fuse_repconv_bn(seq, "fast")


@pytest.mark.parametrize("spike_max", [1, 4])
def test_fold_repconv_modes_agree(spike_max):
    """Factorised (default), dense and all-factorised folds: same spikes and logits; the
    Integer-LIF 1/D lands in a FusedRepConv's first 1×1; the energy profile is the dense one."""
    from spikevideoformer.analysis import profile
    from spikevideoformer.deploy import dense_repconvs
    torch.manual_seed(0)
    model = lively_bn(create_model("svf_tiny", num_classes=10, design="factorized",
                                   spike_max=spike_max, **TINY), seed=3).double().eval()
    x = torch.randn(2, 3, 3, 32, 32, dtype=torch.float64)
    ref = _spikes(model, x)
    folds = {mode: fold(model, repconv=mode) for mode in ("auto", "dense", "factorised")}
    assert any(isinstance(m, FusedRepConv) for m in folds["auto"].modules())
    assert not any(isinstance(m, FusedRepConv) for m in folds["dense"].modules())
    for mode, f in folds.items():
        dlogit, agree = _compare(ref, _spikes(f, x))
        assert agree == 1.0 and dlogit <= 1e-5, mode
    q = folds["auto"].block3[0].attn.q_conv
    assert isinstance(q, FusedRepConv)
    dense = dense_repconvs(folds["auto"])
    assert not any(isinstance(m, FusedRepConv) for m in dense.modules())
    a, b = profile(model, x), profile(folds["auto"], x)
    assert a.table() == b.table()
    with pytest.raises(ValueError):
        fold(model, repconv="fast")


def test_inference_lif_matches_lif_bit_for_bit():
    x = torch.randn(5, 3, 4, 6, 6) * 2
    for d in (1, 4):
        lif = LIF(spike_max=d)
        assert torch.equal(InferenceLIF.from_lif(lif)(x), lif(x))
        assert torch.equal(lif_inference(x, lif.params), lif(x))
    p = LIFParams(spike_max=4)
    counts = lif_inference(x, p, normalise=False)
    assert torch.equal(counts / 4, lif_multistep(x, p))
    # a spike unit u: membrane in units of u gives the same counts
    unit = torch.full((4, 1, 1), 8.0)
    assert torch.equal(lif_inference(x * 8, p, unit=unit), lif_multistep(x, p))


# --------------------------------------------------------------------------- attention alone
@pytest.mark.parametrize("attention", ["hamming", "dot"])
@pytest.mark.parametrize("grouping", ["joint", "factorized"])
@pytest.mark.parametrize("spike_max", [1, 4])
def test_attention_fold_threshold(attention, grouping, spike_max):
    """Scale (+ attn_bn, weights of both signs) → per-channel threshold: same attention spikes."""
    torch.manual_seed(0)
    att = SpikeAttention(16, NeuronSpec(spike_max=spike_max), heads=2, attention=attention,
                         grouping=grouping)
    lively_bn(att, seed=2)
    att = att.double().eval()
    x = 3 * torch.randn(3, 2, 16, 4, 4, dtype=torch.float64)
    ref, out = _spikes(att, x), _spikes(fold(att), x)
    assert torch.allclose(ref[0], out[0], atol=1e-10, rtol=0)
    attn = [k for k in ref[1] if k.endswith("attn_lif")]
    for k in attn:
        assert torch.equal(ref[1][k], out[1][k]), k
    assert max(float((ref[1][k] != 0).double().mean()) for k in attn) > 0.01


# --------------------------------------------------------------------------- whole model
VARIANTS = [(a, d, D) for a in ("hamming", "dot")
            for d in ("joint", "spatial", "factorized", "hierarchical") for D in (1, 4)]


@pytest.mark.parametrize("attention,design,spike_max", VARIANTS)
def test_fold_is_exact(attention, design, spike_max):
    torch.manual_seed(0)
    model = create_model("svf_tiny", num_classes=10, attention=attention, design=design,
                         spike_max=spike_max, **TINY)
    lively_bn(model, seed=3)
    model = model.double().eval()
    folded = fold(model)
    x = torch.randn(2, 3, 3, 32, 32, dtype=torch.float64)
    ref, out = _spikes(model, x), _spikes(folded, x)
    dlogit, agree = _compare(ref, out)
    assert agree == 1.0, f"spike agreement {agree}"
    assert dlogit <= 1e-5
    # the network really spikes (not a trivially silent comparison)
    rates = [float((v != 0).double().mean()) for v in ref[1].values()]
    assert sum(rates) / len(rates) > 0.05
    # deployed structure: no BN, no RepConv; attention LIFs carry per-channel thresholds
    kinds = {type(m) for m in folded.modules()}
    assert not kinds & {nn.BatchNorm1d, nn.BatchNorm2d, RepConv, LIF}
    attn_lifs = [m for n, m in folded.named_modules() if n.endswith("attn_lif")]
    assert attn_lifs and all(isinstance(m.v_th if spike_max == 1 else m.unit, torch.Tensor)
                             for m in attn_lifs)
    assert is_folded(folded) and not is_folded(model)


def test_fold_float32_spike_agreement():
    """float32: rare threshold ties flip a spike; measure agreement (reported in docs)."""
    torch.manual_seed(0)
    results = []
    for attention in ("hamming", "dot"):
        model = create_model("svf_tiny", num_classes=10, attention=attention, design="spatial",
                             **TINY)
        lively_bn(model, seed=0)
        model.eval()
        x = torch.randn(2, 3, 3, 32, 32)
        results.append(_compare(_spikes(model, x), _spikes(fold(model), x)))
    for dlogit, agree in results:
        assert agree > 0.95
        assert dlogit < 0.5


def test_fold_soft_reset_and_no_temporal_state():
    torch.manual_seed(0)
    for neuron in ({"soft_reset": True}, {"temporal_state": False}):
        model = create_model("svf_tiny", num_classes=5, neuron=neuron, **TINY)
        lively_bn(model, seed=1)
        model = model.double().eval()
        x = torch.randn(1, 3, 3, 32, 32, dtype=torch.float64)
        dlogit, agree = _compare(_spikes(model, x), _spikes(fold(model), x))
        assert agree == 1.0 and dlogit <= 1e-5


def test_fold_leaves_the_input_model_alone_and_integer_spikes():
    model = create_model("svf_tiny", num_classes=5, spike_max=4, **TINY)
    lively_bn(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    folded = fold(model)
    assert model.training and not folded.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert any(isinstance(m, RepConv) for m in model.modules())
    # Integer-LIF feeding convolutions emits integer counts; its 1/D moved into the weights
    assert folded.downsample2.encode_lif.normalise is False
    assert folded.block3[0].attn.q_lif.normalise is True  # feeds the attention core
    assert not any(p.requires_grad for p in folded.parameters())
