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
from spikevideoformer.layers.neuron import LIF
from spikevideoformer.models import residual_norms, set_training_recipe, zero_init_residual

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


# --------------------------------------------------------------------------- surrogate width, BN momentum
def test_surrogate_width_changes_only_the_backward():
    torch.manual_seed(0)
    model = create_model("svf_tiny", num_classes=4).train()
    zero_init_residual(model)
    x, y = torch.rand(2, 3, 3, 32, 32), torch.tensor([1, 3])
    assert_fires(model, lambda: model(x))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    results = []
    for alpha in (4.0, 1.0):
        model.load_state_dict(state)  # RepConv's BN padding reads running stats: same start
        counts = set_training_recipe(model, surrogate_alpha=alpha)
        assert counts["lif"] == sum(isinstance(m, LIF) for m in model.modules()) > 0
        assert all(m.params.alpha == alpha for m in model.modules() if isinstance(m, LIF))
        model.zero_grad()
        out = model(x)
        F.cross_entropy(out, y).backward()
        grad = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        results.append((out.detach(), grad))
    assert torch.equal(results[0][0], results[1][0])  # same forward, bit for bit
    assert not torch.allclose(results[0][1], results[1][1])  # a different backward


def test_bn_momentum_sets_every_batchnorm_and_keeps_the_forward():
    torch.manual_seed(0)
    model = create_model("svf_tiny", num_classes=4)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert set_training_recipe(model, bn_momentum=1.0) == {"lif": 0, "batchnorm": len(bns)}
    assert all(m.momentum == 1.0 for m in bns)
    bn = next(m for m in model.downsample1_1.modules() if isinstance(m, nn.BatchNorm2d))
    x = torch.rand(2, 3, 3, 32, 32)
    seen = []
    hook = bn.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach()))
    model.train()(x)
    hook.remove()
    # momentum 1: the running mean is the last batch's mean (0.1 would keep 90 % of the old 0)
    torch.testing.assert_close(bn.running_mean, seen[0].mean((0, 2, 3)), rtol=1e-5, atol=1e-6)


def test_recipe_keys_are_checked_and_applied_by_fit(tmp_path, monkeypatch):
    for bad, key in (({"surrogate_alpha": 0.0}, "model.surrogate_alpha"),
                     ({"surrogate_alpha": 2.0, "neuron": "relu"}, "lif"),
                     ({"bn_momentum": 0.0}, "model.bn_momentum"),
                     ({"bn_momentum": 1.5}, "model.bn_momentum")):
        with pytest.raises(ValueError, match=key):
            load_config({"model": bad})
    from spikevideoformer.tasks import fit as fit_module
    seen = {}

    class Stop(Exception):
        pass

    def capture(model, *a, **k):
        seen["lif"] = {m.params.alpha for m in model.modules() if isinstance(m, LIF)}
        seen["bn"] = {m.momentum for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
        raise Stop
    monkeypatch.setattr(fit_module, "Trainer", capture)
    cfg = load_config("src/spikevideoformer/configs/ablate.yaml",
                      ["model.surrogate_alpha=2.5", "model.bn_momentum=0.05", "data.train_samples=4",
                       "data.val_samples=4", f"run.out_dir={tmp_path}"])
    with pytest.raises(Stop):
        fit_module.fit_task(cfg, progress=False)
    assert seen == {"lif": {2.5}, "bn": {0.05}}
