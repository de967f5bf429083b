"""Training-recipe options that leave the forward untouched: zero-init of residual branches
(docs/design.md §7.2) and early stopping on a plateau of the validation metric."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spikevideoformer import create_model
from spikevideoformer.deploy import fold
from spikevideoformer.engine import Trainer, build_dataloader, load_config, read_jsonl
from spikevideoformer.engine.stopping import PlateauStopper
from spikevideoformer.layers.blocks import ConvBlock, TransformerBlock
from spikevideoformer.models import residual_norms, zero_init_residual

from helpers import assert_fires


# --------------------------------------------------------------------------- zero-init residual
def test_zero_init_makes_every_block_the_identity():
    torch.manual_seed(0)
    model = create_model("svf_tiny", num_classes=4).train()
    blocks = [m for m in model.modules() if isinstance(m, (ConvBlock, TransformerBlock))]
    x = torch.rand(4, 2, 3, 32, 32)
    # 2 norms per ConvBlock (SepConv + ChannelConv), 2 per TransformerBlock (attention + MLP)
    assert zero_init_residual(model) == 2 * len(blocks) == len(residual_norms(model))
    assert_fires(model, lambda: model(x))  # the stem and the blocks' neurons still fire
    seen = []
    hooks = [b.register_forward_hook(lambda m, inp, out: seen.append(torch.equal(inp[0], out)))
             for b in blocks]
    model(x)
    for h in hooks:
        h.remove()
    assert len(seen) == len(blocks) and all(seen)


def test_zero_init_is_an_init_only_change():
    torch.manual_seed(0)
    model = create_model("svf_tiny", num_classes=4)
    ref = {k: v.clone() for k, v in model.state_dict().items()}
    zero_init_residual(model)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, ref[k])}
    assert changed and all(k.endswith(".weight") for k in changed)
    assert all(float(model.state_dict()[k].abs().max()) == 0.0 for k in changed)
    model.load_state_dict(ref)  # loaded (official or trained) weights overwrite it entirely
    assert all(torch.equal(v, ref[k]) for k, v in model.state_dict().items())


def test_zero_init_refuses_a_folded_model():
    model = create_model("svf_tiny", num_classes=4).eval()
    with pytest.raises(ValueError, match="before deploy.fold"):
        zero_init_residual(fold(model))


# --------------------------------------------------------------------------- early stopping
def test_plateau_stopper_counts_validations_without_gain():
    s = PlateauStopper(patience=2, min_delta=0.01)
    assert [s.update(v) for v in (0.5, 0.6, 0.605, None, 0.609, 0.7, 0.69, 0.70)] == \
        [False, False, False, False, True, False, False, True]
    low = PlateauStopper(patience=1, higher_is_better=False)
    assert [low.update(v) for v in (3.0, 2.0, 2.0)] == [False, False, True]
    assert not any(PlateauStopper(patience=None).update(v) for v in (1.0, 1.0, 1.0))


class _ScriptedTask:
    """Trains a linear model on noise; its validation metric follows a fixed script."""

    main_metric = "val_acc"
    higher_is_better = True

    def __init__(self, script):
        self.script, self.calls = list(script), 0

    def forward(self, model, batch):
        return model(batch[0])

    def loss(self, output, batch):
        return F.cross_entropy(output, batch[1]), {}

    def evaluate(self, model, loader):
        self.calls += 1
        return {"acc": self.script[self.calls - 1], "num_samples": 1}


def _trainer(tmp_path, script, **run):
    data = [(torch.randn(3), i % 2) for i in range(16)]
    cfg = load_config({"optim": {"epochs": len(script), "warmup_epochs": 0}, "data": {"batch_size": 4},
                       "run": {"out_dir": str(tmp_path), "device": "cpu", **run}})
    loader = build_dataloader(data, 4, train=True, seed=0)
    return Trainer(nn.Linear(3, 2), _ScriptedTask(script), cfg, loader, [None], progress=False)


def test_trainer_stops_on_a_plateau_and_can_resume_the_decision(tmp_path):
    script = [0.5, 0.8, 0.81, 0.805, 0.9, 0.95]
    tr = _trainer(tmp_path / "a", script, early_stop_patience=2, early_stop_min_delta=0.02)
    final = tr.fit()
    assert tr.epoch == 4 and final["stopped_early"] and final["early_stop"]
    assert final["best_metric"] == 0.81 and final["best_epoch"] == 3
    assert [r["epoch"] for r in read_jsonl(tmp_path / "a" / "metrics.jsonl")] == [1, 2, 3, 4]
    again = _trainer(tmp_path / "a", script, early_stop_patience=2, early_stop_min_delta=0.02,
                     resume="auto")
    assert again.fit()["stopped_early"] and again.global_step == tr.global_step  # no more steps


def test_trainer_without_patience_runs_the_full_schedule(tmp_path):
    tr = _trainer(tmp_path, [0.5, 0.5, 0.5, 0.5])
    final = tr.fit()
    assert tr.epoch == 4 and not final["stopped_early"] and "early_stop" not in final


def test_early_stop_config_is_checked():
    with pytest.raises(ValueError, match="run.early_stop_patience"):
        load_config({"run": {"early_stop_patience": 0}})
    with pytest.raises(ValueError, match="run.early_stop_min_delta"):
        load_config({"run": {"early_stop_min_delta": -0.1}})


# --------------------------------------------------------------------------- per-time-step loss
def test_per_step_logits_average_to_the_model_output():
    torch.manual_seed(0)
    model = create_model("svf_tiny", num_classes=4).train()  # batch statistics: the network fires
    x = torch.rand(2, 3, 3, 32, 32)
    assert_fires(model, lambda: model(x))
    # a train-mode call updates BN running stats, which RepConv's BN padding reads: same start
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        per_step = model(x, per_step=True)
        model.load_state_dict(state)
        out = model(x)
    assert per_step.shape == (2, 3, 4)
    assert not torch.allclose(per_step[:, 0], per_step[:, 1])  # frames differ, so the term differs
    torch.testing.assert_close(per_step.mean(1), out, rtol=1e-6, atol=1e-6)


def test_per_step_loss_is_the_mean_of_frame_losses_and_only_in_training():
    from spikevideoformer.tasks.classification.task import ClassificationTask

    torch.manual_seed(0)
    model = create_model("svf_tiny", num_classes=4).train()
    x, y = torch.rand(2, 3, 3, 32, 32), torch.tensor([1, 3])
    task = ClassificationTask(4, label_smoothing=0.0, per_step_loss=True)
    out = task.forward(model, (x, y))
    assert out.shape == (2, 3, 4)
    loss, metrics = task.loss(out, (x, y))
    frame_losses = [F.cross_entropy(out[:, t], y) for t in range(3)]
    torch.testing.assert_close(loss, torch.stack(frame_losses).mean())
    assert loss > F.cross_entropy(out.mean(1), y) - 1e-6  # Jensen: CE is convex in the logits
    assert metrics["acc"] == (out.mean(1).argmax(1) == y).float().mean().item()
    model.eval()
    assert task.forward(model, (x, y)).shape == (2, 4)  # evaluation sees the model's output


def test_per_step_loss_is_rejected_outside_classification(tmp_path):
    from spikevideoformer.engine.named_configs import load_named_config
    from spikevideoformer.tasks.registry import get_task

    cfg = load_named_config("seg_demo", ["optim.per_step_loss=true"], out_dir=tmp_path)
    with pytest.raises(ValueError, match="per_step_loss applies to classification only"):
        get_task(cfg.run.task).check(cfg)
