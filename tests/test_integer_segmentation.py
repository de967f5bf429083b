"""deploy.integer on the segmentation model (backbone + spike-driven decoder): exact weights give
identical spikes and identical labels, the decoder's counted operations equal a literal count,
the graph round-trips through its files and runs without torch."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import assert_fires, dyadic, lively_bn
from spikevideoformer import create_model
from spikevideoformer.deploy import fold
from spikevideoformer.deploy.integer import IntegerNetwork, compare, load
from spikevideoformer.tasks.segmentation.head import SegSpikeVideoFormer

TINY = dict(embed_dim=(8, 16, 16, 24), heads=2, depths=(1, 1))
RUNNER = (Path(__file__).resolve().parents[1] / "src" / "spikevideoformer" / "deploy" / "integer"
          / "runner.py")
DECODER_CONVS = ["head.lateral.0.conv", "head.lateral.1.conv", "head.lateral.2.conv",
                 "head.lateral.3.conv", "head.fuse_conv", "head.classifier"]


def _clip(size=(32, 32), T=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (T, *size, 3), dtype=np.uint8)


def _seg(spike_max=4, residual=True, upsample="nearest", seed=3):
    torch.manual_seed(0)
    bb = create_model("svf_tiny", num_classes=0, spike_max=spike_max, **TINY)
    m = SegSpikeVideoFormer(bb, 3, decoder_dim=16, upsample=upsample, residual=residual)
    return lively_bn(m, seed=seed).eval()


@pytest.mark.parametrize("spike_max,residual,size", [(4, True, (32, 32)), (1, False, (36, 36))])
def test_exact_weights_give_identical_spikes_and_labels(spike_max, residual, size):
    """36×36 gives stage maps 9, 5, 3, 3: the nearest resize 5 → 9 is not a whole ratio."""
    folded = dyadic(fold(_seg(spike_max, residual), repconv="dense"), unfolded_bn=True)
    net = IntegerNetwork.from_model(folded, 16, input_size=size, membrane_frac_bits=8,
                                    input_scale=1 / 256)
    clip = _clip(size)
    video = net.float_input(clip)
    assert_fires(folded, lambda: folded(video))
    agree = compare(folded, net, clip)
    head = {k: v for k, v in agree.result.spikes.items() if k.startswith("head.")}
    assert len(head) == 6 and all(0 < np.count_nonzero(s) < s.size for s in head.values()), \
        {k: np.count_nonzero(s) / s.size for k, s in head.items()}
    bad = {k: v for k, v in agree.per_layer().items() if v != 1.0}
    assert not bad, bad
    h, w = (size[0] + 3) // 4, (size[1] + 3) // 4
    assert agree.int_logits.shape == agree.float_logits.shape == (3, 3, h, w)
    assert np.allclose(agree.int_logits, agree.float_logits, atol=1e-4)
    stride4 = agree.int_logits.argmax(1)
    assert np.array_equal(stride4, agree.float_logits.argmax(1)) and len(np.unique(stride4)) > 1
    assert agree.int_pred.shape == (3, *size) and agree.same_prediction
    assert agree.identical_predictions == 1.0


def test_decoder_ops_are_counted_literally():
    """Each decoder conv: every spike of value s at (c, i, j) adds its weight column into every
    output its window reaches (fan), s · fan · C_out additions; resizes and sums are copies and
    stream additions (not counted). 1×1 layers equal analysis.profile's SOPs."""
    from spikevideoformer.analysis import profile

    folded = dyadic(fold(_seg(), repconv="dense"), unfolded_bn=True)
    net = IntegerNetwork.from_model(folded, 16, input_size=(32, 32), membrane_frac_bits=8,
                                    input_scale=1 / 256)
    clip = _clip()
    agree = compare(folded, net, clip)
    assert agree.identical == 1.0                    # the profile below sees the same spikes
    res = agree.result
    rows = {r.name: r for r in res.counts.rows if r.stage == "head"}
    assert list(rows) == DECODER_CONVS
    feeds = {"head.lateral.0.conv": "head.lateral.0.lif", "head.lateral.1.conv": "head.lateral.1.lif",
             "head.lateral.2.conv": "head.lateral.2.lif", "head.lateral.3.conv": "head.lateral.3.lif",
             "head.fuse_conv": "head.fuse_lif", "head.classifier": "head.cls_lif"}
    ops = {op["name"]: op for op in net.graph["ops"]}
    for name, lif in feeds.items():
        s = res.spikes[lif].astype(np.int64)                    # [T, C_in, H, W] counts 0..4
        wq = net.tensors[ops[name]["params"]["weight"]]
        c_out, _, k, _ = wq.shape
        literal = []
        for t in range(s.shape[0]):                              # one spike at a time
            total = 0
            for c, i, j in zip(*np.nonzero(s[t])):
                reach = sum(0 <= i + di < s.shape[2] and 0 <= j + dj < s.shape[3]
                            for di in range(-(k // 2), k // 2 + 1) for dj in range(-(k // 2), k // 2 + 1))
                total += int(s[t, c, i, j]) * reach * c_out
            literal.append(total)
        assert rows[name].per_step == literal, name
        assert rows[name].input == "spike" and sum(literal) > 0, name
        hw = s.shape[2] * s.shape[3]
        assert rows[name].dense_macs == s.shape[0] * c_out * hw * s.shape[1] * k * k, name
    resizes = [op for op in net.graph["ops"] if op["op"] == "upsample"]
    assert len(resizes) == 3 and all(set(op["params"]) == {"rows", "cols"} for op in resizes)
    est = {r.name: r for r in profile(folded, net.float_input(clip)).layers}
    for name in DECODER_CONVS:
        if name == "head.fuse_conv":               # 3×3, zero-padded: border spikes reach fewer
            assert rows[name].ops < est[name].sops
        else:                                      # 1×1: the same definition
            assert rows[name].ops == pytest.approx(est[name].sops, rel=1e-12), name


def test_round_trip_and_runner_without_torch(tmp_path):
    net = IntegerNetwork.from_model(fold(_seg()), 8, input_size=(32, 32))
    net.save(tmp_path / "seg8")
    again = load(tmp_path / "seg8")
    assert again.graph == net.graph and net.graph["output"]["kind"] == "segmentation"
    assert all(np.array_equal(again.tensors[k], v) and again.tensors[k].dtype == v.dtype
               for k, v in net.tensors.items()) and set(again.tensors) == set(net.tensors)
    clip = _clip()
    ref = net.run(clip)
    assert ref.accumulators.shape == (3, 3, 8, 8)
    np.save(tmp_path / "clip.npy", clip)
    np.save(tmp_path / "ref.npy", ref.accumulators)
    code = f"""
import sys, importlib.util
import numpy as np
sys.modules['torch'] = None
spec = importlib.util.spec_from_file_location('svf_runner', {str(RUNNER)!r})
r = importlib.util.module_from_spec(spec); sys.modules['svf_runner'] = r; spec.loader.exec_module(r)
res = r.run(r.load({str(tmp_path / 'seg8')!r}), np.load({str(tmp_path / 'clip.npy')!r}))
assert np.array_equal(res.accumulators, np.load({str(tmp_path / 'ref.npy')!r}))
assert res.logits.shape == (3, 3, 8, 8)
print('ok')
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_bilinear_lateral_resize_is_refused():
    with pytest.raises(ValueError, match="nearest"):
        IntegerNetwork.from_model(fold(_seg(upsample="bilinear")), 8, input_size=(32, 32))
