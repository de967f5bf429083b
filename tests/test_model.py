"""Backbone, registry, official layout, input checks (docs/design.md §2)."""
import pytest
import torch

import spikevideoformer as svf
from helpers import REFERENCE, randomize_bn


def read_keys(name):
    keys, total = {}, None
    for line in (REFERENCE / f"official_keys_{name}.txt").read_text().splitlines():
        if line.startswith("# total_parameters"):
            total = int(line.split()[-1])
            continue
        k, _, shape = line.partition("\t")
        keys[k] = tuple(int(s) for s in shape.split(",")) if shape else ()
    return keys, total


@pytest.mark.parametrize("name,ref", [("svf_15m", "15M"), ("svf_31m", "31M"), ("svf_55m", "55M")])
def test_official_sizes_keys_and_param_counts(name, ref):
    keys, total = read_keys(ref)
    model = svf.create_model(name, num_classes=1000)
    sd = model.state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == keys
    assert sum(p.numel() for p in model.parameters()) == total


@pytest.mark.parametrize("ref,kw", [("tiny_3D_ham", dict(attention="hamming", design="joint")),
                                    ("tiny_3D_dot", dict(attention="dot", design="joint")),
                                    ("tiny_2D", dict(attention="dot", design="spatial"))])
def test_tiny_modes_match_official_keys(ref, kw):
    keys, total = read_keys(ref)
    model = svf.create_model("svf_tiny", num_classes=10, **kw)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == keys
    assert sum(p.numel() for p in model.parameters()) == total


def test_list_models():
    assert {"svf_tiny", "svf_15m", "svf_31m", "svf_55m"} <= set(svf.list_models())


@pytest.mark.parametrize("attention", ["hamming", "dot"])
@pytest.mark.parametrize("design", ["joint", "spatial", "factorized", "hierarchical"])
def test_every_variant_builds_and_runs(attention, design):
    model = svf.create_model("svf_tiny", num_classes=5, attention=attention, design=design).eval()
    video = torch.rand(2, 3, 3, 32, 32)
    assert model(video).shape == (2, 5)
    feats = model.forward_features(video)
    assert [tuple(f.shape) for f in feats] == [
        (2, 3, 16, 8, 8), (2, 3, 32, 4, 4), (2, 3, 64, 2, 2), (2, 3, 80, 2, 2)]


def test_design_parameter_budgets():
    def attn_params(design):
        m = svf.create_model("svf_tiny", num_classes=0, design=design)
        return sum(p.numel() for n, p in m.named_parameters() if ".attn." in n or ".tattn." in n)
    joint, fact, hier = attn_params("joint"), attn_params("factorized"), attn_params("hierarchical")
    assert attn_params("spatial") == joint
    # 4 RepConv sets (4D²) → 7 (factorized) → 8 (hierarchical), plus BNs
    assert 1.6 < fact / joint < 1.8 and 1.9 < hier / joint < 2.1


def test_ann_counterpart_and_integer_lif_build():
    ann = svf.create_model("svf_tiny", num_classes=3, attention="softmax", neuron="relu").eval()
    assert not any(isinstance(m, svf.layers.LIF) for m in ann.modules())
    assert ann(torch.rand(1, 2, 3, 32, 32)).shape == (1, 3)
    ilif = svf.create_model("svf_tiny", num_classes=3, spike_max=4)
    assert all(m.spike_max == 4 for m in ilif.modules() if isinstance(m, svf.layers.LIF))


def test_image_input_is_t1():
    model = svf.create_model("svf_tiny", num_classes=4).eval()
    img = torch.rand(2, 3, 32, 32)
    assert torch.equal(model(img), model(img.unsqueeze(1)))


@pytest.mark.parametrize("design", ["joint", "factorized"])
def test_batch_invariance_and_no_state_leak(design):
    model = svf.create_model("svf_tiny", num_classes=6, design=design)
    randomize_bn(model)
    model.eval()
    video = torch.rand(5, 4, 3, 32, 32) * 2
    with torch.no_grad():
        batch = model(video)
        again = model(video)
        for i in range(5):
            alone = model(video[i:i + 1])
            torch.testing.assert_close(alone[0], batch[i], rtol=0, atol=1e-5)
    assert torch.equal(batch, again)


# Note: at 32×32 many attention branches are silent at init; a train-mode BatchNorm fed a
# constant then scales its input gradient by 1/sqrt(eps) (as in the official model), so
# gradient magnitudes at init can be huge. Training clips gradients (engine).
@pytest.mark.parametrize("kw", [dict(), dict(attention="dot", design="spatial"),
                                dict(design="hierarchical"), dict(design="factorized", spike_max=4),
                                dict(attention="softmax", neuron="relu")])
def test_gradients_reach_every_parameter(kw):
    model = svf.create_model("svf_tiny", num_classes=4, **kw).train()
    out = model(torch.rand(2, 4, 3, 32, 32) * 3)
    out.sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    assert sum(p.grad.abs().sum() for p in model.parameters()) > 0


@pytest.mark.parametrize("video,err,match", [
    (torch.rand(2, 3, 32, 32, 1, 1), ValueError, "shape"),
    (torch.rand(3, 32, 32), ValueError, "shape"),
    (torch.rand(1, 2, 1, 32, 32), ValueError, "channels"),
    (torch.rand(1, 2, 4, 32, 32), ValueError, "channels"),
    (torch.rand(1, 0, 3, 32, 32), ValueError, "T = 0"),
    (torch.rand(1, 2, 3, 8, 32), ValueError, "too small"),
    (torch.randint(0, 255, (1, 2, 3, 32, 32), dtype=torch.uint8), TypeError, "floating"),
    (torch.full((1, 2, 3, 32, 32), float("nan")), ValueError, "NaN"),
    (torch.full((1, 2, 3, 32, 32), float("inf")), ValueError, "inf"),
    ([[1.0]], TypeError, "torch.Tensor"),
])
def test_bad_input_errors(video, err, match):
    model = svf.create_model("svf_tiny", num_classes=2)
    with pytest.raises(err, match=match):
        model(video)


@pytest.mark.parametrize("kw,match", [
    (dict(attention="cosine"), "attention"), (dict(design="global"), "design"),
    (dict(embed_dim=(16, 32, 60, 80)), "divisible"), (dict(neuron="tanh"), "neuron"),
])
def test_bad_config_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        svf.create_model("svf_tiny", num_classes=2, **kw)
    with pytest.raises(ValueError, match="unknown model"):
        svf.create_model("svf_9m")


def test_no_temporal_state_model_cannot_see_frame_order():
    """Spatial attention + membranes reset every frame: the logits are invariant to reversing
    the clip, so a left-moving clip and its time reversal (a right-moving clip) get the same
    score — why this ablation stays at chance on MovingDigits. The joint model is not."""
    video = torch.rand(2, 4, 3, 32, 32) * 3
    flat = svf.create_model("svf_tiny", num_classes=2, design="spatial", temporal_state=False)
    joint = svf.create_model("svf_tiny", num_classes=2)
    for m in (flat, joint):
        randomize_bn(m)
        m.eval()
    with torch.no_grad():
        torch.testing.assert_close(flat(video), flat(video.flip(1)), rtol=0, atol=1e-5)
        assert not torch.allclose(joint(video), joint(video.flip(1)), atol=1e-4)
