"""Pose task: head shapes and rest-pose init, loss, metrics, runner (train/eval), SMPL errors, demo."""
import json

import numpy as np
import pytest
import torch

from helpers import assert_fires, lively_bn, train_named
from spikevideoformer import create_model
from spikevideoformer.engine import load_config
from spikevideoformer.tasks.pose import (
    PoseSpikeVideoFormer, PoseTask, SyntheticPoseVideos, build_pose_model, evaluate_pose,
    rest_joints, train_pose,
)
from spikevideoformer.tasks.pose.head import IDENTITY_6D
from spikevideoformer.tasks.pose.data import build_pose_data, collate_pose, training_pose_stats

CONFIG = "src/spikevideoformer/configs/pose_demo.yaml"



def tiny_model(in_chans=3, **kw):
    return PoseSpikeVideoFormer(create_model("svf_tiny", num_classes=0, in_chans=in_chans), **kw)


def synthetic_batch(n=4, T=4, size=32, split="train"):
    ds = SyntheticPoseVideos(split, num_samples=n, num_frames=T, size=size)
    return collate_pose([ds[i] for i in range(n)])


def test_head_shapes_and_rest_pose_init():
    model = tiny_model()
    x = torch.rand(2, 4, 3, 32, 32)
    for mode in (model.train, model.eval):
        mode()
        out = model(x)
        assert out["pose_6d"].shape == (2, 4, 24, 6) and out["rotmats"].shape == (2, 4, 24, 3, 3)
        assert out["betas"].shape == (2, 10) and out["transl"].shape == (2, 4, 3)
        assert out["joints"].shape == (2, 4, 24, 3)
        # untrained: identity rotations, mean shape, zero translation -> the rest skeleton
        torch.testing.assert_close(out["pose_6d"], torch.tensor(IDENTITY_6D).expand(2, 4, 24, 6),
                                   atol=0.02, rtol=0)
        assert (out["joints"] - rest_joints()).abs().max() < 0.02
    # the body model is not part of the checkpoint; the head is smaller than a 1000-class head
    assert not any(k.startswith("_body") or "rest" in k for k in model.state_dict())
    assert 0 < model.head_parameters() < 2_000_000
    out["joints"].sum().backward()
    assert model.proj.weight.grad is not None


def test_state_is_per_call_and_batch_independent():
    model = lively_bn(tiny_model()).eval()
    x = torch.rand(3, 4, 3, 32, 32)
    assert_fires(model, lambda: model(x))
    with torch.no_grad():
        a = model(x)["joints"]
        b = model(x[1:2])["joints"]
        c = model(x)["joints"]
    torch.testing.assert_close(a[1:2], b)
    torch.testing.assert_close(a, c)


def pose_loss_curve(seed: int = 0, steps: int = 30):
    """Losses of ``steps`` AdamW steps on one synthetic batch (benchmarks/learning_spread.py
    measures the statistic below over seeds and thread counts)."""
    torch.manual_seed(seed)
    model = tiny_model()
    task = PoseTask()
    batch = synthetic_batch()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(steps):
        loss, metrics = task.loss(task.forward(model, batch), batch)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
    return losses, metrics


def pose_loss_ratio(losses) -> float:
    return float(np.mean(losses[-5:]) / np.mean(losses[:5]))


POSE_RATIO_MAX = 0.92  # measured spread: see the test's docstring


def test_loss_decreases_on_synthetic_batch():
    """Mean of the last 5 over the first 5 losses. Measured by benchmarks/learning_spread.py
    (seeds 0-9 x 1 and 2 threads, Intel Xeon, AVX-512): 0.61-0.84, mean 0.73, sd 0.05 (0.83
    seen on an AMD EPYC, AVX2); a model that does not learn stays at 1.0 (one batch)."""
    losses, metrics = pose_loss_curve(seed=0)
    assert set(metrics) >= {"loss_joints", "loss_pa_joints", "loss_transl", "loss_pose", "loss_betas",
                            "mpjpe_rel"}
    assert pose_loss_ratio(losses) < POSE_RATIO_MAX, losses


def test_loss_masks_missing_annotations():
    clips, tgt = synthetic_batch(n=2)
    out = {"joints": tgt["joints"] + 0.1, "transl": tgt["transl"], "pose_6d": tgt["pose_6d"],
           "betas": tgt["betas"]}
    tgt = {**tgt, "has_smpl": torch.tensor([False, False]), "has_joints": torch.tensor([True, False])}
    out["joints"][1] += 5.0  # sample 1 has no 3-D joints: must not count
    loss, m = PoseTask().loss(out, (clips, tgt))
    assert m["loss_pose"] == 0 and m["loss_betas"] == 0 and m["loss_joints"] < 1e-6
    assert abs(m["loss_transl"] - 0.1) < 1e-5  # pelvis position error, sample 0 only


def test_evaluate_metrics_and_baseline():
    batch = synthetic_batch(n=3, T=4, split="val")

    class Oracle(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return {"joints": batch[1]["joints"][: x.shape[0]] + 0.01}  # 1 cm everywhere

    stats = training_pose_stats(SyntheticPoseVideos("train", 16, 4, 32))
    task = PoseTask(mean_joints=stats["mean_joints"], mean_root=stats["mean_root"],
                    mean_joints_body=stats["mean_joints_body"])
    res = task.evaluate(Oracle(), [batch])
    assert res["num_samples"] == 3
    assert abs(res["mpjpe"] - 10 * 3 ** 0.5) < 1e-3 and res["pa_mpjpe"] < 1e-3 and res["pel_mpjpe"] < 1e-3
    assert res["accel_error"] < 1e-3
    for k in ("mpjpe", "pa_mpjpe", "pel_mpjpe", "accel_error"):
        assert res[f"baseline_{k}"] == task.last_baselines["world"][k]
    for k in ("mpjpe", "pa_mpjpe", "pel_mpjpe"):
        assert res[f"baseline_body_{k}"] == task.last_baselines["body"][k]
    # the body-frame mean keeps the limbs when headings vary: the stronger PA-MPJPE reference
    assert 50 < res["baseline_body_pa_mpjpe"] < res["baseline_pa_mpjpe"]
    assert task.last_example[0].shape == (4, 24, 3)


def test_build_from_config_modalities():
    cfg = load_config(CONFIG, ["data.modality=event", "data.num_frames=3", "data.size=32"])
    model = build_pose_model(cfg)
    assert model.backbone.in_chans == 2
    train, val, collate = build_pose_data(cfg.data, 0)
    clips, tgt = collate([train[0], train[1]])
    assert clips.shape == (2, 3, 2, 32, 32) and tgt["joints"].shape == (2, 3, 24, 3)
    with torch.no_grad():
        assert model.eval()(clips)["joints"].shape == (2, 3, 24, 3)
    with pytest.raises(ValueError, match="synthetic_pose"):
        build_pose_data(load_config(CONFIG, ["data.dataset=moving_digits"]).data)


def test_smpl_missing_file_is_a_clear_error(tmp_path):
    cfg = load_config(CONFIG)
    with pytest.raises(FileNotFoundError, match="SMPL"):
        build_pose_model(cfg, smpl_model=str(tmp_path / "SMPL_NEUTRAL.pkl"))


def test_train_then_evaluate_pose(tmp_path):
    run = tmp_path / "run"
    cfg = load_config(CONFIG, [f"run.out_dir={run}", "data.train_samples=8", "data.val_samples=4",
                               "data.batch_size=4", "data.num_frames=3", "optim.epochs=1",
                               "optim.warmup_epochs=0"])
    res = train_pose(cfg, progress=False)
    assert res["main_metric"] == "val_pa_mpjpe" and res["best_epoch"] == 1
    assert {"val_mpjpe", "val_pel_mpjpe", "val_accel_error", "val_baseline_pa_mpjpe"} <= set(res)
    assert (run / "best" / "model.safetensors").is_file() and (run / "pose_meta.json").is_file()
    assert (run / "skeletons.png").is_file()
    ev = evaluate_pose(run / "best", tmp_path / "ev")
    saved = json.loads((tmp_path / "ev" / "eval_metrics.json").read_text())
    assert saved["num_samples"] == 4 and saved["units"] == "mm"
    assert abs(saved["pa_mpjpe"] - res["best_metric"]) < 1e-6
    assert abs(ev["baseline"]["pa_mpjpe"] - res["val_baseline_pa_mpjpe"]) < 1e-6
    assert (tmp_path / "ev" / "eval_skeletons.png").is_file()
    with pytest.raises(FileNotFoundError, match="SMPL"):
        evaluate_pose(run / "best", tmp_path / "ev2", smpl_model=str(tmp_path / "missing.pkl"))


# the pose demo's model and recipe on a reduced budget: one epoch (64 steps); the statistic is
# val MPJPE over the camera-frame mean pose's: 0.626-0.641 (sd <= 0.005) over seeds 0-2 x 1 and
# 2 threads (benchmarks/learning_spread.py, AMD EPYC); a model that learns nothing scores >= 1
REDUCED_DEMO = ["optim.epochs=1", "optim.warmup_epochs=0.25", "run.early_stop_patience=null"]
REDUCED_DEMO_RATIO_MAX = 0.8


def reduced_demo_ratio(seed: int, out_dir) -> float:
    """Val MPJPE / mean-pose MPJPE of the reduced pose demo (benchmarks/learning_spread.py)."""
    last = train_named("pose_demo", REDUCED_DEMO, out_dir, seed)[-1]
    return last["val_mpjpe"] / last["val_baseline_mpjpe"]


def test_reduced_demo_beats_the_mean_pose(tmp_path):
    """The default suite's check of `svf demo --task pose`: position and facing are learned."""
    assert reduced_demo_ratio(0, tmp_path) <= REDUCED_DEMO_RATIO_MAX


def test_cli_demo_quick(tmp_path, capsys):
    from spikevideoformer.cli import main
    assert main(["demo", "--task", "pose", "--quick", "--out", str(tmp_path / "d"), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "mean pose, body frame" in text and "PA-MPJPE" in text
    assert (tmp_path / "d" / "eval_metrics.json").is_file()


def _pose_folder(root, n_seq=2, n=6):
    from PIL import Image
    from spikevideoformer.tasks.pose import SimpleSkeleton, axis_angle_to_matrix
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for s in range(n_seq):
            d = root / split / f"seq{s}"
            (d / "frames").mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
                Image.fromarray(img).save(d / "frames" / f"{i:06d}.png")
            pose = rng.normal(0, 0.2, (n, 72)).astype(np.float32)
            transl = rng.normal(0, 0.1, (n, 3)).astype(np.float32)
            rot = axis_angle_to_matrix(torch.from_numpy(pose).reshape(n, 24, 3))
            joints = SimpleSkeleton()(rot, None, torch.from_numpy(transl)).numpy()
            ann = {"pose": pose, "transl": transl, "betas": np.zeros(10, np.float32)}
            if s == 0:
                ann["joints3d"] = joints
            np.savez(d / "annotations.npz", **ann)


def test_pose_folder_data_event_and_stats(tmp_path):
    _pose_folder(tmp_path / "data")
    cfg = load_config(CONFIG, ["data.dataset=pose_folder", f"data.root={tmp_path / 'data'}",
                               "data.modality=event", "data.num_frames=3", "data.size=32"])
    train, val, collate = build_pose_data(cfg.data, 0)
    assert len(train) == 4 and len(val) == 4  # 2 sequences x 2 windows, val from root/test
    clips, tgt = collate([train[0], train[3]])
    assert clips.shape == (2, 3, 2, 32, 32)
    assert tgt["has_smpl"].all() and tgt["joints"].shape == (2, 3, 24, 3)
    stats = training_pose_stats(train)
    assert stats["mean_joints"].shape == (24, 3) and torch.allclose(stats["mean_joints"][0], torch.zeros(3))
    model = build_pose_model(cfg).eval()
    with torch.no_grad():
        out = model(clips)
    loss, m = PoseTask().loss(out, (clips, tgt))
    assert torch.isfinite(loss) and m["loss_pose"] > 0


def test_backbone_weights_initialise_the_pose_model(tmp_path):
    from safetensors.torch import save_file
    from spikevideoformer.engine import load_model_weights
    clf = create_model("svf_tiny", num_classes=7)  # e.g. ImageNet / classification weights
    save_file({k: v.contiguous() for k, v in clf.state_dict().items()}, str(tmp_path / "w.safetensors"))
    model = tiny_model()
    sd = model.state_dict()
    assert any(k.startswith("block3.") for k in sd) and "proj.weight" in sd
    assert not any(k.startswith("backbone.") for k in sd)
    report = load_model_weights(tmp_path / "w.safetensors", model)
    backbone_keys = {k for k in clf.state_dict() if not k.startswith("head.")}
    assert backbone_keys <= set(report.loaded) and "head.weight" in report.unexpected
    mine, theirs = model.backbone.state_dict(), clf.state_dict()
    assert all(torch.equal(mine[k], theirs[k]) for k in backbone_keys)
    model.load_state_dict(sd)  # un-prefixed keys load back (strict)
    model.load_state_dict({("backbone." + k if k in clf.state_dict() else k): v for k, v in sd.items()})


@pytest.mark.slow
def test_full_demo_learns_limb_angles(tmp_path):
    """docs/pose.md's claim (seed 0, ~3.5 min on 2 cores): PA-MPJPE <= 0.75 x the body-frame mean
    pose (measured 0.731-0.745 over seeds 0-2) and MPJPE <= 0.6 x the camera-frame mean pose
    (measured 0.41-0.42)."""
    from spikevideoformer.cli import main
    assert main(["demo", "--task", "pose", "--quiet", "--out", str(tmp_path / "d")]) == 0
    ev = json.loads((tmp_path / "d" / "eval_metrics.json").read_text())
    assert ev["pa_mpjpe"] <= 0.75 * ev["baseline_body"]["pa_mpjpe"], ev
    assert ev["mpjpe"] <= 0.6 * ev["baseline"]["mpjpe"], ev
