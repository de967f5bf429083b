"""Activation checkpointing (``set_grad_checkpointing``): bit-identical outputs, gradients and
BatchNorm statistics to the plain model, on a network that fires."""
import copy

import pytest
import torch
from torch import nn

from helpers import assert_fires, lively_bn
from spikevideoformer.engine.config import load_config
from spikevideoformer.layers.grad_checkpoint import checkpoint_block
from spikevideoformer.models import create_model
from spikevideoformer.tasks.common import build_backbone


def _step(model: nn.Module, video: torch.Tensor, proj: torch.Tensor) -> torch.Tensor:
    out = model(video)
    (out * proj).sum().backward()
    return out.detach()


def _assert_same_state(a: nn.Module, b: nn.Module) -> None:
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert p.grad is not None and torch.equal(p.grad, q.grad), n
    for (n, x), (_, y) in zip(a.named_buffers(), b.named_buffers()):
        assert torch.equal(x, y), n


@pytest.mark.parametrize("design", ["joint", "factorized"])
def test_checkpointed_training_step_is_bit_identical(design):
    torch.manual_seed(0)
    plain = lively_bn(create_model("svf_tiny", num_classes=5, design=design)).train()
    video = torch.randn(2, 4, 3, 32, 32)
    assert_fires(plain, lambda: plain(video))  # train mode: BN uses the batch statistics
    ckpt = copy.deepcopy(plain)
    ckpt.set_grad_checkpointing(True)
    assert ckpt.grad_checkpointing and not plain.grad_checkpointing
    tracked = {n: int(b) for n, b in plain.named_buffers() if n.endswith("num_batches_tracked")}
    proj = torch.randn(2, 5)
    for _ in range(2):  # two steps: the second starts from statistics the first updated
        assert torch.equal(_step(plain, video, proj), _step(ckpt, video, proj))
        _assert_same_state(plain, ckpt)
    # every BatchNorm counted each forward once, not again in the recomputation
    for n, b in ckpt.named_buffers():
        if n.endswith("num_batches_tracked"):
            assert int(b) == tracked[n] + 2, n


def test_checkpoint_block_replays_rng_and_keeps_bn_stats():
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Dropout(0.5), nn.BatchNorm2d(8), nn.ReLU()).train()
    ckpt = copy.deepcopy(plain)
    x = torch.randn(4, 3, 8, 8, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    torch.manual_seed(1)
    plain(x).square().sum().backward()
    torch.manual_seed(1)
    y = checkpoint_block(ckpt, x2)
    torch.manual_seed(2)  # backward's recomputation must not draw from the current RNG state
    y.square().sum().backward()
    assert torch.equal(x.grad, x2.grad)
    _assert_same_state(plain, ckpt)


def test_no_checkpointing_without_grad():
    m = create_model("svf_tiny", num_classes=3).eval()
    video = torch.randn(1, 2, 3, 32, 32)
    with torch.no_grad():
        ref = m(video)
        m.set_grad_checkpointing()
        assert torch.equal(m(video), ref)
    m.set_grad_checkpointing(False)
    assert not m.grad_checkpointing


def test_config_key_and_task_wrappers():
    from spikevideoformer.tasks.pose.head import PoseSpikeVideoFormer
    from spikevideoformer.tasks.segmentation.head import SegSpikeVideoFormer
    assert load_config().model.grad_checkpointing is False
    cfg = load_config(overrides=["model.grad_checkpointing=true"])
    assert build_backbone(cfg.model, 3, 0).grad_checkpointing
    assert not build_backbone(load_config().model, 3, 0).grad_checkpointing
    with pytest.raises(ValueError, match="model.grad_checkpointing"):
        load_config(overrides=["model.grad_checkpointing=1"])
    for wrapper in (PoseSpikeVideoFormer(create_model("svf_tiny", num_classes=0)),
                    SegSpikeVideoFormer(create_model("svf_tiny", num_classes=0), num_classes=3)):
        wrapper.set_grad_checkpointing(True)
        assert wrapper.backbone.grad_checkpointing
        wrapper.set_grad_checkpointing(False)
        assert not wrapper.backbone.grad_checkpointing


def test_replayed_statistics_matter_for_repconv():
    """BNAndPad reads the running statistics right after BN updated them: torch's plain
    checkpoint recomputes from twice-updated statistics (wrong gradients); ours replays them."""
    from torch.utils.checkpoint import checkpoint
    from spikevideoformer.layers import RepConv
    torch.manual_seed(0)
    plain = RepConv(4, 4).train()
    x = torch.randn(3, 4, 6, 6)
    grads = {}
    for how in ("plain", "torch", "ours"):
        m = copy.deepcopy(plain)
        xi = x.clone().requires_grad_(True)
        y = {"plain": m, "torch": lambda z: checkpoint(m, z, use_reentrant=False),
             "ours": lambda z: checkpoint_block(m, z)}[how](xi)
        y.square().sum().backward()
        grads[how] = xi.grad
    assert not torch.equal(grads["plain"], grads["torch"])
    assert torch.equal(grads["plain"], grads["ours"])
