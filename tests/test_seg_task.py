"""Segmentation task: decoder head, loss/metrics task object, runner (train/eval) and the demo."""
from __future__ import annotations

import json
import math

import pytest
import torch

import spikevideoformer as svf
from helpers import assert_fires, lively_bn, train_named
from spikevideoformer.engine import load_config
from spikevideoformer.tasks.segmentation import (SegmentationTask, SegSpikeVideoFormer, SpikeSegHead,
                                                 SyntheticSegVideos, head_parameter_count)
from spikevideoformer.tasks.segmentation.task import segmentation_loss


def tiny(num_classes=4, spike_max=1, **kw):
    backbone = svf.create_model("svf_tiny", num_classes=0, spike_max=spike_max)
    return SegSpikeVideoFormer(backbone, num_classes, **kw)


@pytest.mark.parametrize("spike_max", [1, 4])
def test_head_shapes_forward_backward(spike_max):
    model = tiny(5, spike_max=spike_max, decoder_dim=24)
    video = torch.rand(2, 3, 3, 32, 48)
    out = model(video)
    assert out.shape == (2, 3, 5, 32, 48)
    assert model.forward_logits(video).shape == (2, 3, 5, 8, 12)
    masks = torch.randint(0, 5, (2, 3, 32, 48))
    masks[0, 0] = 255
    loss, n = segmentation_loss(out, masks)
    assert n == 2 * 3 * 32 * 48 - 32 * 48 and torch.isfinite(loss)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing
    # the head's neurons are of the backbone's kind (Integer-LIF with D = 4)
    lifs = [m for m in model.head.modules() if isinstance(m, svf.layers.LIF)]
    assert len(lifs) == 6 and all(m.params.spike_max == spike_max for m in lifs)


@pytest.mark.parametrize("spike_max", [1, 4])
def test_head_spike_driven_and_batch_independent(spike_max):
    from spikevideoformer.analysis import check_spike_driven
    model = lively_bn(tiny(3, spike_max=spike_max, decoder_dim=16)).eval()
    video = torch.rand(2, 2, 3, 32, 32)
    assert_fires(model, lambda: model(video))
    report = check_spike_driven(model, video)
    assert report.ok, str(report)
    with torch.no_grad():  # no state leaks between samples of a batch
        both = model(video)
        one = model(video[1:])
    torch.testing.assert_close(both[1:], one)


def test_head_variants_and_prior_init():
    plain = tiny(3, decoder_dim=16, residual=False, upsample="bilinear")
    assert plain(torch.rand(1, 2, 3, 32, 32)).shape == (1, 2, 3, 32, 32)
    model = tiny(3, decoder_dim=16)
    bias = model.init_class_prior(torch.tensor([80.0, 20.0, 0.0]))
    expected = (0.9 * torch.tensor([0.8, 0.2, 0.0]) + 0.1 / 3).log()
    torch.testing.assert_close(bias, expected)
    with pytest.raises(ValueError):
        model.init_class_prior(torch.tensor([1.0, 2.0]))


def test_head_parameter_count_svf_15m():
    # exact closed form on svf_15m (paper: 17.8M with head, 15.1M backbone with a 1000-class head)
    assert head_parameter_count((64, 128, 256, 360), 19, 512) == 2_787_859
    head = SpikeSegHead((64, 128, 256, 360), 19, 512)
    n = sum(p.numel() for p in head.parameters())
    assert n == 2_787_859 and 2.5e6 <= n <= 3.1e6
    tiny_head = tiny(4).head
    assert sum(p.numel() for p in tiny_head.parameters()) == head_parameter_count((16, 32, 64, 80), 4, 64) == 50_052


def test_loss_ignores_and_empty_batch():
    logits = torch.randn(1, 2, 3, 4, 4, requires_grad=True)
    masks = torch.full((1, 2, 4, 4), 255)
    loss, n = segmentation_loss(logits, masks)
    assert n == 0 and float(loss.detach()) == 0.0
    loss.backward()  # still has a graph
    masks[0, 1, 0, 0] = 2
    loss, n = segmentation_loss(logits, masks)
    ref = torch.nn.functional.cross_entropy(logits[0, 1, :, 0, 0][None], torch.tensor([2]))
    assert n == 1 and torch.allclose(loss, ref)


class _Oracle(torch.nn.Module):
    """Predicts from the masks hidden in the clip's first channel (or a constant class)."""

    def __init__(self, num_classes, constant=None):
        super().__init__()
        self.k, self.constant = num_classes, constant
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, clips):
        labels = clips[:, :, 0].round().long().clamp(0, self.k - 1)
        if self.constant is not None:
            labels = torch.full_like(labels, self.constant)
        return torch.nn.functional.one_hot(labels, self.k).permute(0, 1, 4, 2, 3).float() * 10


def _oracle_batches(T=8):
    torch.manual_seed(1)
    batches = []
    for _ in range(2):
        masks = torch.randint(0, 3, (2, 1, 6, 6)).expand(2, T, 6, 6).clone()  # constant over time
        masks[:, :, :2] = torch.randint(0, 3, (2, T, 2, 6))                   # flickering rows
        clips = masks.unsqueeze(2).float().expand(2, T, 3, 6, 6).clone()
        masks[0, :, 0, 0] = 255
        batches.append((clips, masks))
    return batches


def test_evaluate_perfect_and_constant_predictor():
    batches = _oracle_batches()
    task = SegmentationTask(3, vc_windows=(8, 16), vc_definition="all_windows")  # 8-frame clips
    perfect = task.evaluate(_Oracle(3), batches)
    assert perfect["miou"] == pytest.approx(1.0) and perfect["pixel_acc"] == pytest.approx(1.0)
    assert perfect["mVC_8"] == pytest.approx(1.0)
    assert math.isnan(perfect["mVC_16"])  # clips of 8 frames have no 16-frame window
    assert perfect["num_samples"] == 4 and perfect["loss"] < 1e-3
    const = task.evaluate(_Oracle(3, constant=0), batches)
    masks = torch.cat([b[1] for b in batches])
    valid = masks != 255
    frac0 = float((masks[valid] == 0).float().mean())
    assert const["pixel_acc"] == pytest.approx(frac0)
    assert const["miou"] == pytest.approx(frac0 / 3)  # IoU(0) = frac0, the others 0
    assert const["mVC_8"] == pytest.approx(1.0)  # a constant prediction is perfectly consistent
    assert task.per_class_iou()["1"] == 0.0
    assert "miou" in task.table()


def test_evaluate_stitches_videos_from_meta():
    T = 4
    masks = torch.zeros(2, T, 4, 4, dtype=torch.long)
    masks[:, :, :2] = 1
    clips = masks.unsqueeze(2).float().expand(2, T, 3, 4, 4).clone()
    meta = {"video": ["a", "a"], "frames": torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]]),
            "new": torch.ones(2, T, dtype=torch.bool)}
    task = SegmentationTask(2, vc_windows=(8,), vc_definition="all_windows")
    res = task.evaluate(_Oracle(2), [(clips, masks, meta)])
    assert res["mVC_8"] == pytest.approx(1.0)  # two 4-frame windows form one 8-frame video
    assert math.isnan(task.evaluate(_Oracle(2), [(clips, masks)])["mVC_8"])
    # the default, VSPW's reference definition: an 8-frame video has no window (starts 0..T-k-1);
    # a 12-frame one has 4, pooled
    vspw = SegmentationTask(2, vc_windows=(8,))
    assert vspw.vc_definition == "vspw"
    assert math.isnan(vspw.evaluate(_Oracle(2), [(clips, masks, meta)])["mVC_8"])
    meta3 = {"video": ["a"] * 3, "frames": torch.arange(12).reshape(3, 4), "new": torch.ones(3, T, dtype=torch.bool)}
    three = (torch.cat([clips, clips[:1]]), torch.cat([masks, masks[:1]]), meta3)
    assert vspw.evaluate(_Oracle(2), [three])["mVC_8"] == pytest.approx(1.0)


def _cfg(tmp_path, *extra):
    return load_config(str(_config_path()),
                       ["data.train_samples=8", "data.val_samples=4", "data.size=32", "data.num_frames=4",
                        "data.batch_size=4", "optim.epochs=1", f"run.out_dir={tmp_path / 'run'}", *extra])


def _config_path():
    from importlib import resources
    return resources.files("spikevideoformer.configs") / "seg_demo.yaml"


def seg_loss_curve(seed: int = 0, steps: int = 10) -> list[float]:
    """Losses of ``steps`` AdamW steps on one synthetic batch (benchmarks/learning_spread.py)."""
    torch.manual_seed(seed)
    model = tiny(4, decoder_dim=32)
    ds = SyntheticSegVideos("train", 4, num_frames=4, size=32, num_classes=4)
    clips = torch.stack([ds[i][0] for i in range(4)])
    masks = torch.stack([ds[i][1] for i in range(4)])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        loss, _ = segmentation_loss(model(clips), masks)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def seg_loss_ratio(losses: list[float]) -> float:
    return min(losses[-3:]) / losses[0]


SEG_RATIO_MAX = 0.9  # measured spread: see the test's docstring


def test_loss_decreases_short_run():
    """Best of the last 3 losses over the first. Measured by benchmarks/learning_spread.py
    (seeds 0-9 x 1 and 2 threads, Intel Xeon): 0.77-0.81, sd 0.013; no learning gives 1.0."""
    losses = seg_loss_curve(seed=0)
    assert seg_loss_ratio(losses) < SEG_RATIO_MAX, losses


# the segmentation demo's model and recipe on a reduced budget: one epoch (128 steps) of 5;
# benchmarks/learning_spread.py (seeds 0-2 x 1 and 2 threads, AMD EPYC): val mIoU 0.577-0.608,
# sd <= 0.014; the majority-class baseline is ~0.22
REDUCED_DEMO = ["data.train_samples=1024", "optim.epochs=1", "run.early_stop_patience=null"]
REDUCED_DEMO_MIOU_MIN = 0.45


def reduced_demo_miou(seed: int, out_dir) -> float:
    """Validation mIoU of the reduced segmentation demo (benchmarks/learning_spread.py)."""
    return train_named("seg_demo", REDUCED_DEMO, out_dir, seed)[-1]["val_miou"]


def test_reduced_demo_beats_the_majority_baseline(tmp_path):
    """The default suite's check of `svf demo --task segmentation` (Integer-LIF D = 4)."""
    assert reduced_demo_miou(0, tmp_path) >= REDUCED_DEMO_MIOU_MIN


def test_train_then_evaluate_checkpoint(tmp_path):
    from spikevideoformer.tasks.segmentation.runner import evaluate_segmentation, train_segmentation
    cfg = _cfg(tmp_path)
    res = train_segmentation(cfg, progress=False)
    assert res["main_metric"] == "val_miou" and res["best_epoch"] == 1
    assert "val_mVC_8" not in res  # T = 4: no 8-frame window, not tracked in training
    out = evaluate_segmentation(tmp_path / "run" / "best", tmp_path / "eval")
    assert out["miou"] == pytest.approx(res["val_miou"])  # the checkpoint scores what training logged
    saved = json.loads((tmp_path / "eval" / "eval_metrics.json").read_text())
    assert saved["miou"] == pytest.approx(out["miou"])
    assert saved["mVC_8"] is None and saved["mVC_16"] is None
    assert set(saved["per_class_iou"]) == {"background", "disc", "square", "triangle"}
    assert saved["energy_mj"] > 0
    assert (tmp_path / "eval" / "eval_panel.png").stat().st_size > 0


def test_cli_demo_quick(tmp_path):
    from spikevideoformer.cli import main
    assert main(["demo", "--task", "segmentation", "--quick", "--out", str(tmp_path / "d"), "--quiet"]) == 0
    assert (tmp_path / "d" / "prediction_panel.png").is_file()
    summary = json.loads((tmp_path / "d" / "demo_metrics.json").read_text())
    held = summary["held_out"]
    ious = [v for v in held["per_class_iou"].values() if v is not None]
    assert ious and held["miou"] == pytest.approx(sum(ious) / len(ious))
    log = [json.loads(line) for line in (tmp_path / "d" / "metrics.jsonl").read_text().splitlines()]
    assert summary["best_val_miou"] == pytest.approx(max(r["val_miou"] for r in log))


def test_shipped_paper_configs():
    from importlib import resources
    root = resources.files("spikevideoformer.configs")
    cs = load_config(str(root / "seg_cityscapes_15m.yaml"))
    assert (cs.model.name, cs.model.spike_max, cs.model.num_classes, cs.data.dataset) == \
        ("svf_15m", 4, 19, "cityscapes")
    vs = load_config(str(root / "seg_vspw_15m.yaml"))
    assert (vs.model.name, vs.model.num_classes, vs.data.dataset, vs.run.task) == \
        ("svf_15m", 124, "vspw", "segmentation")


def test_cli_demo_compare_trains_the_ann_counterpart(tmp_path, capsys):
    from spikevideoformer.cli import main
    assert main(["demo", "--task", "segmentation", "--quick", "--compare", "--out", str(tmp_path / "d"),
                 "--quiet"]) == 0
    summary = json.loads((tmp_path / "d" / "demo_metrics.json").read_text())
    assert {"spatial_nostate", "ann"} <= set(summary)
    ann_cfg = (tmp_path / "d-ann" / "config.yaml").read_text()
    assert "neuron: relu" in ann_cfg and "attention: softmax" in ann_cfg
    assert "ANN counterpart" in capsys.readouterr().out


@pytest.mark.slow
def test_full_demo_reaches_its_goal(tmp_path):
    """docs/segmentation.md's claim (seed 0, 4-5 min on 2 cores): held-out mIoU >= 0.60 with every
    class IoU >= 0.30 (measured 0.764-0.777, worst class 0.600, over seeds 0-2)."""
    from spikevideoformer.cli import main
    assert main(["demo", "--task", "segmentation", "--quiet", "--out", str(tmp_path / "d")]) == 0
    held = json.loads((tmp_path / "d" / "demo_metrics.json").read_text())["held_out"]
    assert held["miou"] >= 0.60 and min(held["per_class_iou"].values()) >= 0.30, held
