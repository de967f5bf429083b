"""Per-stage gradient norms (analysis.grad_scale) and the trainability gap it documents."""
import math

import pytest
import torch

from spikevideoformer.analysis.grad_scale import STAGES, stage_grad_norms, stage_of
from spikevideoformer.data.moving_digits import MovingDigits
from spikevideoformer.models import create_model


def test_stage_of_official_names():
    assert stage_of("downsample1_1.encode_conv.weight") == "stage1"
    assert stage_of("ConvBlock2_2.0.conv1.weight") == "stage2"
    assert stage_of("block3.5.attn.q_conv.0.body.0.weight") == "stage3"
    assert stage_of("downsample4.encode_bn.bias") == "stage4"
    assert stage_of("head.weight") == "head"


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
