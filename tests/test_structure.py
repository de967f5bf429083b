"""The model owns its structure: explicit attention parts, state_dict keys per design, stage map,
feature_info, each block's own fold (docs/design.md §2.2, §3.1, §3.6, §6)."""
import hashlib
import json
from pathlib import Path

import pytest
import torch
from torch import nn

import spikevideoformer as svf
from helpers import lively_bn
from spikevideoformer.analysis import check_spike_driven, profile
from spikevideoformer.analysis._trace import stage_resolver, stem_layers
from spikevideoformer.deploy import fold
from spikevideoformer.layers import NeuronSpec, RepConv
from spikevideoformer.layers.blocks import (
    MLP, AttentionBranch, ConvBlock, DownSampling, SepConv, SpikeAttention, TransformerBlock,
    state_dict_name,
)
from spikevideoformer.models.backbone import STAGE_LAYOUT, STAGES, check_video

SRC = Path(__file__).resolve().parents[1] / "src" / "spikevideoformer"
# key<TAB>shape lists recorded from the code before the attention modules became explicit
KEYS = json.loads((Path(__file__).parent / "data" / "structure" / "state_dict_keys.json").read_text())
DESIGN_KW = [(a, d) for a in ("hamming", "dot", "softmax")
             for d in ("joint", "spatial", "factorized", "hierarchical")]


def _kw(attention, design):
    return dict(attention=attention, design=design, neuron="relu" if attention == "softmax" else "lif")


# --------------------------------------------------------------------------- state_dict keys
@pytest.mark.parametrize("attention,design", DESIGN_KW)
def test_state_dict_keys_of_every_design_unchanged(attention, design):
    ref = KEYS[f"{attention}/{design}"]
    small = svf.create_model("svf_tiny", num_classes=5, depths=(1, 1), kd=True, **_kw(attention, design))
    assert [f"{k}\t{','.join(map(str, v.shape))}" for k, v in small.state_dict().items()] \
        == ref["depths_1_1_kd"]
    full = svf.create_model("svf_tiny", num_classes=5, **_kw(attention, design))
    assert hashlib.sha256("\n".join(full.state_dict()).encode()).hexdigest() == ref["svf_tiny_sha256"]


def test_factorized_temporal_branch_saved_flat_and_loads_both_ways():
    torch.manual_seed(0)
    m = svf.create_model("svf_tiny", num_classes=3, design="factorized", depths=(1, 1))
    lively_bn(m)
    sd = m.state_dict()
    assert "block3.0.attn.t_q_conv.0.body.0.weight" in sd
    assert not any(".temporal." in k for k in sd)
    assert "block3.0.attn.temporal.q_conv" in dict(m.named_modules())
    torch.manual_seed(1)
    other = svf.create_model("svf_tiny", num_classes=3, design="factorized", depths=(1, 1))
    other.load_state_dict(sd)  # strict: flat t_ keys map onto the branch
    assert all(torch.equal(v, other.state_dict()[k]) for k, v in sd.items())
    by_path = {**{n: p for n, p in m.named_parameters()}, **{n: b for n, b in m.named_buffers()}}
    torch.manual_seed(2)
    third = svf.create_model("svf_tiny", num_classes=3, design="factorized", depths=(1, 1))
    third.load_state_dict(by_path)  # module-path keys load as well
    assert all(torch.equal(v, third.state_dict()[k]) for k, v in sd.items())
    assert state_dict_name(m, "block3.0.attn.temporal.q_conv") == "block3.0.attn.t_q_conv"
    assert state_dict_name(m, "block3.0.attn.temporal.kv") == "block3.0.attn.t_kv"
    assert state_dict_name(m, "block3.0.attn.q_conv") == "block3.0.attn.q_conv"


def test_optional_parts_are_none_not_absent():
    m = svf.create_model("svf_tiny", num_classes=3, attention="dot", design="spatial")
    assert m.downsample1_1.encode_lif is None and m.downsample2.encode_lif is not None
    assert m.head_kd is None and m.block3[0].tattn is None and m.block3[0].attn.temporal is None
    assert m.block3[0].attn.attn_bn is None
    h = svf.create_model("svf_tiny", num_classes=3, design="hierarchical", kd=True)
    assert isinstance(h.block3[0].tattn, SpikeAttention) and isinstance(h.head_kd, nn.Linear)
    for rel in ("layers/blocks.py", "models/backbone.py", "deploy/fold.py", "analysis/_trace.py",
                "analysis/energy.py", "analysis/purity.py", "analysis/grad_scale.py"):
        assert "hasattr(" not in (SRC / rel).read_text(), rel


# --------------------------------------------------------------------------- stages, features
def test_stage_map_covers_the_model_once():
    m = svf.create_model("svf_tiny", num_classes=4, kd=True)
    declared = [n for _, names in STAGE_LAYOUT for n in names]
    assert len(declared) == len(set(declared))
    assert [n for n, _ in m.named_children()] and {n for n, _ in m.named_children()} == set(declared)
    assert list(m.stage_modules()) == list(STAGES) == ["stem", "stage1", "stage2", "stage3",
                                                        "stage4", "head"]
    assert all(m.stage_of(n) in STAGES for n, _ in m.named_parameters())
    assert m.stage_of("downsample1_1.encode_conv") == "stem"
    assert m.stage_of("ConvBlock1_1.0.conv1") == "stage1" and m.stage_of("head_kd.bias") == "head"
    assert m.stage_of("not_a_module") == "other"
    assert stem_layers(m) == ["downsample1_1.encode_conv"]
    wrap = nn.Module()
    wrap.backbone, wrap.decoder = m, nn.Linear(2, 2)
    stage = stage_resolver(wrap)
    assert stage("backbone.block4.1.mlp.fc2_conv") == "stage4" and stage("decoder") == "head"
    assert stem_layers(wrap) == ["backbone.downsample1_1.encode_conv"]
    assert stage_resolver(nn.Linear(2, 2))("weight") == "other"


@pytest.mark.parametrize("depths", [(6, 2), (1, 0)])
def test_feature_info_names_the_modules_that_produce_the_features(depths):
    m = svf.create_model("svf_tiny", num_classes=0, depths=depths).eval()
    x = torch.rand(2, 2, 3, 32, 32)
    got, hooks = {}, []
    for info in m.feature_info:
        mod = m.get_submodule(info["module"])
        hooks.append(mod.register_forward_hook(
            lambda _m, _i, out, s=info["stage"]: got.__setitem__(s, out)))
    with torch.no_grad():
        feats = m.forward_features(x)
    for h in hooks:
        h.remove()
    assert [i["stage"] for i in m.feature_info] == [1, 2, 3, 4]
    assert [i["num_chs"] for i in m.feature_info] == list(m.feature_channels)
    for info, f in zip(m.feature_info, feats):
        assert torch.equal(got[info["stage"]].transpose(0, 1), f)
        assert f.shape[2] == info["num_chs"] and 32 // f.shape[-1] == info["reduction"]
    if depths == (1, 0):
        assert m.feature_info[3]["module"] == "downsample4"


# --------------------------------------------------------------------------- per-block fold
def _blocks(neuron):
    return [DownSampling(8, 16, 3, 2, 1, neuron), DownSampling(3, 8, 7, 2, 3, neuron, first=True),
            SepConv(8, neuron), ConvBlock(8, neuron), MLP(8, neuron),
            SpikeAttention(16, neuron, heads=2, grouping="factorized"),
            AttentionBranch(16, neuron, heads=2, attention="dot", grouping="temporal"),
            TransformerBlock(16, neuron, heads=2, design="hierarchical")]


@pytest.mark.parametrize("index", range(8))
def test_each_block_fuses_itself_exactly(index):
    torch.manual_seed(0)
    block = lively_bn(_blocks(NeuronSpec())[index], seed=index).double().eval()
    cin = 3 if index == 1 else 16 if index >= 5 else 8
    x = 3 * torch.randn(3, 2, cin, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        ref = block(x)
        for mod in list(block.modules()):
            fuse = getattr(mod, "fuse", None)
            if callable(fuse):
                fuse()
        out = block(x)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-9)
    assert not any(isinstance(m, RepConv) for m in block.modules())
    left = [n for n, m in block.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert all(n.endswith("attn_bn") for n in left), left  # only fuse_scale moves the attention BN
    for mod in block.modules():
        declared = getattr(mod, "spike_consumers", None)
        for neuron, consumers in (declared() if callable(declared) else []):
            assert neuron is not None and consumers
            assert all(isinstance(c, (nn.Conv1d, nn.Conv2d, nn.Linear)) for c in consumers)


def test_fold_of_a_relu_hamming_model_keeps_its_scale():
    """A non-LIF attention neuron cannot take the threshold fold: scale and attn_bn stay."""
    torch.manual_seed(0)
    m = lively_bn(svf.create_model("svf_tiny", num_classes=3, neuron="relu", depths=(1, 1)))
    m = m.double().eval()
    x = torch.rand(1, 2, 3, 32, 32, dtype=torch.float64)
    folded = fold(m)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), m(x), rtol=1e-9, atol=1e-9)
    att = folded.block3[0].attn
    assert att.scale == m.block3[0].attn.scale and isinstance(att.attn_bn, nn.BatchNorm2d)


# --------------------------------------------------------------------------- reports, input check
def test_energy_rows_keep_state_dict_names_purity_uses_module_paths():
    torch.manual_seed(0)
    m = lively_bn(svf.create_model("svf_tiny", num_classes=3, design="factorized", depths=(1, 1)))
    x = torch.randn(1, 2, 3, 32, 32)
    rows = {r.name: r for r in profile(m, x).layers}
    for name in ("block3.0.attn.t_q_conv", "block3.0.attn.t_kv", "block3.0.attn.t_qkv",
                 "block3.0.attn.kv", "block4.0.attn.t_v_conv"):
        assert name in rows and rows[name].stage == name[:6].replace("block", "stage")
    assert rows["downsample1_1.encode_conv"].stage == "stem"
    checked = check_spike_driven(m, x).checked
    assert "block3.0.attn.temporal.q_conv[input]" in checked
    assert "block3.0.attn.temporal[Q]" in checked


def test_check_video_finite_check_is_optional():
    bad = torch.full((1, 2, 3, 16, 16), float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        check_video(bad, 3)  # CPU: checked by default
    assert check_video(bad, 3, finite=False) is bad
    meta = torch.empty(1, 2, 3, 16, 16, device="meta")  # not CPU: no device sync by default
    assert check_video(meta, 3).shape == (1, 2, 3, 16, 16)
    with pytest.raises(ValueError, match="channels"):
        check_video(meta, 2)
