"""Per-stage gradient norms (analysis.grad_scale) and the trainability gap it documents."""
import math

import pytest
import torch

from spikevideoformer.analysis.grad_scale import REPORTED_AS, STAGES, stage_grad_norms, stage_of
from spikevideoformer.data.moving_digits import MovingDigits
from spikevideoformer.models import create_model


def test_stage_of_official_names():
    model = create_model("svf_tiny", num_classes=2)
    # the model calls downsample1_1 the stem; this report keeps it in stage1 (REPORTED_AS)
    assert model.stage_of("downsample1_1.encode_conv.weight") == "stem"
    assert REPORTED_AS["stem"] == "stage1"
    assert stage_of(model, "downsample1_1.encode_conv.weight") == "stage1"
    assert stage_of(model, "ConvBlock2_2.0.conv1.weight") == "stage2"
    assert stage_of(model, "block3.5.attn.q_conv.0.body.0.weight") == "stage3"
    assert stage_of(model, "downsample4.encode_bn.bias") == "stage4"
    assert stage_of(model, "head.weight") == "head"
    # every other parameter: the model's own stage
    for name, _ in model.named_parameters():
        assert stage_of(model, name) == REPORTED_AS.get(model.stage_of(name), model.stage_of(name))


def test_wrapped_backbone_and_plain_module():
    """A wrapper's backbone is read through its prefix; its own layers are head; no backbone:
    everything is head (nothing else to report)."""
    wrapper = torch.nn.Module()
    wrapper.backbone = create_model("svf_tiny", num_classes=0)
    wrapper.decoder = torch.nn.Linear(2, 2)
    assert stage_of(wrapper, "backbone.downsample1_1.encode_conv.weight") == "stage1"
    assert stage_of(wrapper, "backbone.block4.0.mlp.fc1_conv.weight") == "stage4"
    assert stage_of(wrapper, "decoder.weight") == "head"
    assert stage_of(torch.nn.Linear(2, 2), "weight") == "head"


def _batch(n=16):
    ds = MovingDigits("train", num_samples=n, num_frames=4, size=16, num_classes=2, seed=0)
    return torch.stack([ds[i][0] for i in range(n)]), torch.tensor([int(ds[i][1]) for i in range(n)])


def test_norms_cover_every_parameter_and_leave_no_grads():
    torch.manual_seed(0)
    model = create_model("svf_tiny", num_classes=2)
    x, y = _batch(4)
    norms = stage_grad_norms(model, x, y)
    assert set(norms) == set(STAGES) and all(v > 0 and math.isfinite(v) for v in norms.values())
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()  # same batch, same mode: same norms
    total = math.sqrt(sum(float(p.grad.double().pow(2).sum()) for p in model.parameters()))
    assert total == pytest.approx(math.sqrt(sum(v * v for v in norms.values())), rel=1e-6)


def test_dot_attention_gradients_explode_at_init_hamming_do_not():
    """docs/ablations.md: why the dot/joint variant does not train at this scale."""
    x, y = _batch()
    norms = {}
    for att in ("hamming", "dot"):
        torch.manual_seed(0)
        norms[att] = stage_grad_norms(create_model("svf_tiny", num_classes=2, attention=att), x, y)
    assert norms["hamming"]["stage1"] < 1e3
    assert norms["dot"]["stage1"] > 1e6 * norms["hamming"]["stage1"]
