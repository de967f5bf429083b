"""analysis.check_spike_driven: every weight layer and attention product sees spikes."""
import pytest
import torch
from torch import nn

from helpers import lively_bn
from spikevideoformer import create_model
from spikevideoformer.analysis import check_spike_driven, is_spike_tensor

TINY = dict(embed_dim=(8, 16, 16, 24), heads=2, depths=(1, 1))



def _video():
    return torch.randn(1, 2, 3, 32, 32)


@pytest.mark.parametrize("attention", ["hamming", "dot"])
@pytest.mark.parametrize("spike_max", [1, 4])
def test_svf_is_spike_driven(attention, spike_max):
    torch.manual_seed(0)
    model = lively_bn(create_model("svf_tiny", num_classes=10, attention=attention,
                                   spike_max=spike_max, **TINY))
    r = check_spike_driven(model, _video())
    assert r.ok, str(r)
    assert r.exempt == ["downsample1_1.encode_conv"]
    assert "block3.0.attn[Q]" in r.checked and "head[input]" in r.checked
    # SepConv's dwconv → pwconv2 has no neuron between: a fusable linear map of spikes
    assert {layer for layer, _ in r.fused} == {n for n, _ in model.named_modules()
                                               if n.endswith("Conv.pwconv2")}
    assert "yes" in str(r)


def test_catches_a_removed_neuron():
    torch.manual_seed(0)
    model = lively_bn(create_model("svf_tiny", num_classes=10, **TINY))
    model.downsample2.encode_lif = nn.Identity()
    r = check_spike_driven(model, _video())
    assert not r.ok
    (v,) = r.violations
    assert v.layer == "downsample2.encode_conv" and v.operand == "input"
    assert v.fraction > 0.5 and v.sample and not all(float(x).is_integer() for x in v.sample)
    assert "downsample2.encode_conv" in str(r)


def test_catches_the_ann_counterpart():
    model = create_model("svf_tiny", num_classes=10, attention="softmax", neuron="relu", **TINY)
    r = check_spike_driven(lively_bn(model), _video())
    assert not r.ok
    bad = {(v.layer, v.operand) for v in r.violations}
    assert ("block3.0.attn", "Q") in bad and ("ConvBlock1_1.0.conv2", "input") in bad


def test_training_graph_has_bn_between_neuron_and_conv():
    model = lively_bn(create_model("svf_tiny", num_classes=10, **TINY))
    assert check_spike_driven(model, _video()).ok
    r = check_spike_driven(model, _video(), fold=False)
    assert not r.ok and all(".body.2." in v.layer for v in r.violations)


def test_is_spike_tensor():
    assert is_spike_tensor(torch.tensor([0.0, 1.0, 1.0]))
    assert not is_spike_tensor(torch.tensor([0.0, 0.5]))
    assert is_spike_tensor(torch.tensor([0.0, 0.25, 0.75, 1.0]), spike_max=4)  # k/D
    assert is_spike_tensor(torch.tensor([0.0, 2.0, 4.0]), spike_max=4)         # integers
    assert not is_spike_tensor(torch.tensor([5.0]), spike_max=4)
    assert not is_spike_tensor(torch.tensor([-1.0]), spike_max=4)
