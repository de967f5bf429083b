"""deploy.integer on whole networks: exact weights give identical spikes, every attention ×
design runs close to the float model, the file format round-trips, a silent network stays
silent, counted operations equal the energy profile's SOPs where the definitions coincide."""
import numpy as np
import pytest
import torch
from torch import nn

from helpers import assert_fires, dyadic, lively_bn
from spikevideoformer import create_model
from spikevideoformer.deploy import InferenceLIF, fold
from spikevideoformer.deploy.integer import IntegerNetwork, compare, load, run

TINY = dict(embed_dim=(8, 16, 16, 24), heads=2, depths=(1, 1))
SIZE = (32, 32)


def _clip(T=3, c=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (T, *SIZE, c), dtype=np.uint8)


def _model(attention="hamming", design="joint", spike_max=1, seed=3, **kw):
    torch.manual_seed(0)
    m = create_model("svf_tiny", num_classes=10, attention=attention, design=design,
                     spike_max=spike_max, **TINY, **kw)
    return lively_bn(m, seed=seed).eval()


@pytest.mark.parametrize("attention,spike_max", [("hamming", 1), ("dot", 4)])
def test_exactly_representable_weights_give_identical_spikes(attention, spike_max):
    folded = dyadic(fold(_model(attention, "factorized", spike_max), repconv="dense"))
    net = IntegerNetwork.from_model(folded, 16, input_size=SIZE, membrane_frac_bits=8,
                                    input_scale=1 / 256)
    clip = _clip()
    video = net.float_input(clip)
    assert_fires(folded, lambda: folded(video))
    agree = compare(folded, net, clip)
    bad = {k: v for k, v in agree.per_layer().items() if v != 1.0}
    assert not bad, bad
    assert np.allclose(agree.int_logits, agree.float_logits, atol=1e-4)


VARIANTS = [(a, d, D) for a in ("hamming", "dot")
            for d in ("joint", "spatial", "factorized", "hierarchical") for D in (1, 4)]


@pytest.mark.parametrize("attention,design,spike_max", VARIANTS)
def test_every_attention_and_design_runs(attention, design, spike_max):
    model = _model(attention, design, spike_max)
    folded = fold(model)
    clip = _clip(seed=1)
    for bits, floor in ((16, 0.995), (8, 0.9)):
        agree = compare(folded, IntegerNetwork.from_model(folded, bits, input_size=SIZE), clip)
        assert agree.identical >= floor, (bits, agree.identical)
    assert agree.result.counts.additions > 0 and agree.result.counts.macs > 0


def test_file_round_trip(tmp_path):
    net = IntegerNetwork.from_model(fold(_model("hamming", "hierarchical", 4)), 8, input_size=SIZE)
    net.save(tmp_path / "int8")
    again = load(tmp_path / "int8")
    assert again.graph == net.graph
    assert set(again.tensors) == set(net.tensors)
    assert all(np.array_equal(again.tensors[k], v) and again.tensors[k].dtype == v.dtype
               for k, v in net.tensors.items())
    clip = _clip()
    a, b = net.run(clip), run(again, clip)
    assert np.array_equal(a.accumulators, b.accumulators)
    assert [r.per_step for r in a.counts.rows] == [r.per_step for r in b.counts.rows]


def test_broken_files_and_inputs_give_one_clear_error(tmp_path):
    net = IntegerNetwork.from_model(fold(_model()), 8, input_size=SIZE)
    net.save(tmp_path / "a")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="graph.json is missing"):
        load(tmp_path / "empty")
    (tmp_path / "a" / "graph.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load(tmp_path / "a")
    with pytest.raises(TypeError, match="uint8"):
        net.run(_clip().astype(np.float32))
    with pytest.raises(ValueError, match=r"\[T, H, W, 3\]"):
        net.run(_clip(c=2))
    with pytest.raises(ValueError, match="exported for 32x32"):
        net.run(np.zeros((2, 48, 48, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="weight_bits"):
        IntegerNetwork.from_model(fold(_model()), 1, input_size=SIZE)


def test_a_network_that_does_not_fire():
    folded = fold(_model())
    with torch.no_grad():
        for m in folded.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d)) and m.bias is not None:
                m.bias.fill_(-50.0)        # every membrane stays far below threshold
            elif isinstance(m, InferenceLIF) and m.bias is not None:
                m.bias.fill_(-50.0)        # the attention neurons' folded BN shift
    net = IntegerNetwork.from_model(folded, 8, input_size=SIZE)
    agree = compare(folded, net, _clip())
    assert agree.identical == 1.0
    assert all(not s.any() for s in agree.result.spikes.values())
    rows = agree.result.counts.rows
    # nothing fired: no addition, except SDHA's Q (K^T V), where 2Q - 1 = -1 for a silent query
    # (it then subtracts the rows of K^T V, which are all 0: n·d operations per head regardless)
    assert all(r.ops == 0 for r in rows if r.input == "spike" and r.kind != "Q (K^T V)")
    assert all(r.ops == r.dense_macs for r in rows if r.kind == "Q (K^T V)")
    assert agree.result.counts.macs > 0                # the stem and pwconv2 still run
    assert np.allclose(agree.int_logits, folded.head.bias.numpy(), atol=1e-2)


def test_counted_equal_profile_sops_where_the_definitions_coincide():
    """Same spikes (exact weights): 1×1 convs, linears and attention products count exactly
    the profile's SOPs; zero-padded k×k convs count fewer (border outputs are not reached)."""
    from spikevideoformer.analysis import profile

    folded = dyadic(fold(_model("hamming", "joint", 4), repconv="dense"))
    net = IntegerNetwork.from_model(folded, 16, input_size=SIZE, membrane_frac_bits=8,
                                    input_scale=1 / 256)
    clip = _clip()
    assert compare(folded, net, clip).identical == 1.0
    est = {r.name: r for r in profile(folded, net.float_input(clip)).layers}
    counted = {r.name: r for r in net.run(clip).counts.rows}
    conv = {op["name"]: (net.tensors[op["params"]["weight"]].shape[-1], op["attrs"]["stride"])
            for op in net.graph["ops"] if op["op"] == "conv"}
    assert set(counted) == set(est)
    same = 0
    for name, r in counted.items():
        e = est[name]
        assert r.input == e.input, name
        kernel, stride = conv.get(name, (1, 1))
        if r.input == "real":                  # in-bounds MACs <= dense MACs
            assert r.ops <= e.macs + 0.5 and (r.ops == e.macs) == (kernel == 1), name
        elif kernel == 1:                      # 1×1 convs, linears, attention products
            assert r.ops == pytest.approx(e.sops, rel=1e-12), name
            same += 1
        elif stride == 1:                      # the border outputs a spike would reach do not exist
            assert r.ops <= e.sops + 1e-6, name
    assert same >= 10


def test_backbone_without_head_gives_features():
    """A backbone under a task decoder (num_classes = 0): the graph ends at stage 4."""
    torch.manual_seed(0)
    m = lively_bn(create_model("svf_tiny", num_classes=0, spike_max=4, **TINY), seed=3).eval()
    net = IntegerNetwork.from_model(fold(m), 16, input_size=SIZE)
    agree = compare(fold(m), net, _clip())
    assert agree.identical >= 0.995
    assert agree.int_logits.shape == (3, 24, 2, 2)            # [T, C, H/16, W/16]
    assert net.graph["output"]["kind"] == "features"


def test_cli_errors_are_one_line(tmp_path, capsys):
    from spikevideoformer.cli import main

    assert main(["export", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("svf export: error: checkpoint not found") and "\n" not in err
