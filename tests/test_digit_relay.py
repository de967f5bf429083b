"""Tests for the DigitRelay spatio-temporal classification dataset (and its builder)."""
import hashlib
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from spikevideoformer.data.digit_relay import QUADRANTS, RELAY_CLASSES, DigitRelay, _ROUTES
from spikevideoformer.data.moving_digits import digit_split_indices
from spikevideoformer.tasks.datasets import build_dataset, dataset_names

from helpers import assert_fires

CHANCE = 0.25
# Blindness margin. Measured with probe_accuracies below (3000 train / 1000 val clips, MLP on
# 8x8-pooled grey frames; default design: flash, gap 1), data seeds 0-5, 24 values: single frame
# t = 0: 0.231-0.263, t = 3: 0.235-0.265, frame average 0.233-0.265, per-frame model averaged
# over time 0.240-0.269; together mean 0.250, std 0.011 (the binomial std at 1000 clips is
# 0.014). Chance +- 0.06 is > 4 std. Positive controls, same MLP: absolute frame differences
# 0.994-0.999, all raw frames in order 0.994-0.999.
MARGIN = 0.06


def _hash(clip: torch.Tensor) -> str:
    return hashlib.sha1(clip.numpy().tobytes()).hexdigest()


def test_shapes_dtype_range_and_classes():
    ds = DigitRelay("train", num_samples=12)
    clip, label = ds[5]
    assert clip.shape == (8, 3, 64, 64) and clip.dtype == torch.float32
    assert 0.0 <= float(clip.min()) and float(clip.max()) <= 1.0 and float(clip.max()) > 0.5
    assert isinstance(label, int) and label == 1
    assert ds.classes == ["clockwise", "counterclockwise", "rows", "columns"] == RELAY_CLASSES[4]
    grey = DigitRelay("val", num_samples=4, num_classes=2, channels=1, num_frames=12, size=96)
    c, l = grey[3]
    assert c.shape == (12, 1, 96, 96) and grey.classes == ["clockwise", "counterclockwise"] and l == 1
    assert float(c.max()) > 0.9  # white digits at full intensity
    assert len(ds) == 12 and ds[-1][1] == ds[11][1]


def test_label_balance():
    for k in (2, 4):
        ds = DigitRelay("train", num_samples=103, num_classes=k)
        counts = np.bincount([ds.clip_params(i)["label"] for i in range(len(ds))], minlength=k)
        assert counts.max() - counts.min() <= 1


def test_determinism_within_instances_and_across_processes():
    a, b = DigitRelay("train", num_samples=20, seed=3), DigitRelay("train", num_samples=20, seed=3)
    for i in (0, 7, 19):
        assert torch.equal(a[i][0], a[i][0]) and torch.equal(a[i][0], b[i][0]) and a[i][1] == b[i][1]
    assert not torch.equal(a[0][0], DigitRelay("train", num_samples=20, seed=4)[0][0])
    assert not torch.equal(a[0][0], a[4][0])  # same label, different clip
    code = ("import hashlib; from spikevideoformer.data.digit_relay import DigitRelay; "
            "print(hashlib.sha1(DigitRelay('train', num_samples=20, seed=3)[7][0].numpy().tobytes())"
            ".hexdigest())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == _hash(a[7][0])


def test_splits_use_disjoint_digits_and_streams():
    pools = {s: set(digit_split_indices(s).tolist()) for s in ("train", "val", "test")}
    hashes = {}
    for split in pools:
        ds = DigitRelay(split, num_samples=150)
        assert {d for i in range(len(ds)) for d in ds.clip_params(i)["digits"]} <= pools[split]
        hashes[split] = {_hash(ds[i][0]) for i in range(len(ds))}
        assert len(hashes[split]) == 150
    assert not hashes["train"] & hashes["val"] and not hashes["train"] & hashes["test"]
    assert not hashes["val"] & hashes["test"]
    tr, va = DigitRelay("train", num_samples=5).clip_params(2), DigitRelay("val", num_samples=5).clip_params(2)
    assert tr["rest"] != va["rest"] or tr["phase"] != va["phase"]  # different random streams


def _time_order(hop_frames: dict) -> tuple:
    """Quadrant ids in the order of their first activity, rotated to start at TL (id 0)."""
    order = tuple(sorted(hop_frames, key=lambda q: hop_frames[q][0]))
    start = order.index(0)
    return order[start:] + order[:start]


def test_flashes_follow_the_route_of_the_label():
    """Default design: in every frame exactly one digit is lit, in the order of the route."""
    ds = DigitRelay("test", num_samples=40)
    half = ds.size // 2
    assert ds.event == "flash" and ds.period == 4 and ds.num_frames == 8
    for i in range(len(ds)):
        p = ds.clip_params(i)
        clip = ds[i][0].numpy()
        assert sorted(t for ts in p["hop_frames"].values() for t in ts) == list(range(ds.num_frames))
        for q, frames in p["hop_frames"].items():
            assert [b - a for a, b in zip(frames, frames[1:])] == [ds.period] * (len(frames) - 1)
            for t in frames:  # the lit quadrant is the brightest one, the others stay dim
                peaks = [clip[t, :, y:y + half, x:x + half].max()
                         for y, x in ((0, 0), (0, half), (half, half), (half, 0))]
                others = max(v for k, v in enumerate(peaks) if k != q)
                assert int(np.argmax(peaks)) == q and others <= ds.dim + 1e-6 < 0.5 < peaks[q]
        assert _time_order(p["hop_frames"]) in _ROUTES[ds.classes[p["label"]]]


def test_hops_follow_the_route_of_the_label():
    """The first design (``event="hop"``, ``gap=None``): one hop per digit, spread over T."""
    ds = DigitRelay("test", num_samples=40, event="hop", gap=None)
    half = ds.size // 2
    for i in range(len(ds)):
        p = ds.clip_params(i)
        clip = ds[i][0].numpy()
        first = {q: ts[0] for q, ts in p["hop_frames"].items()}
        assert all(len(ts) == 1 for ts in p["hop_frames"].values())
        rest = clip[(first[0] + 1) % ds.num_frames]  # a hop frame is followed by rest
        changed = {t for t in range(ds.num_frames) if not np.array_equal(clip[t], rest)}
        assert changed == set(first.values())
        for q, t in first.items():  # the change lies around the hopping digit's quadrant
            ys, xs = np.nonzero(np.abs(clip[t] - rest).sum(0))
            cy, cx = (QUADRANTS[q][0] == "B") * half + half / 2, (QUADRANTS[q][1] == "R") * half + half / 2
            assert abs(ys.mean() - cy) < half / 2 + ds.hop and abs(xs.mean() - cx) < half / 2 + ds.hop
        assert _time_order(p["hop_frames"]) in _ROUTES[ds.classes[p["label"]]]


@pytest.mark.parametrize("kw", [dict(num_frames=8), dict(num_frames=12, gap=3),
                                dict(num_frames=10, event="hop", gap=None)])
def test_every_class_gives_the_same_multiset_of_frames(kw):
    """The construction behind the blindness: for one scene, each route permutes the frames."""
    ds = DigitRelay("train", num_samples=8, **kw)
    for i in range(4):
        p = ds.clip_params(i)
        bags, means = set(), []
        for routes in _ROUTES.values():
            for route in routes:
                p["hop_frames"] = ds.hop_frames(route, p["phase"])
                clip = torch.from_numpy(ds.render(p))
                bags.add(tuple(sorted(_hash(f) for f in clip)))
                means.append(clip.double().mean(0))
        assert len(bags) == 1 and len(means) == 6
        assert all(torch.allclose(m, means[0], rtol=0, atol=1e-12) for m in means)


# ---------------------------------------------------------------- blindness probes
def _pooled(ds: DigitRelay) -> tuple[torch.Tensor, torch.Tensor]:
    """Grey frames average-pooled to 8x8: ``[N, T, 64]``, and the labels."""
    feats = []
    for lo in range(0, len(ds), 250):
        x = torch.stack([ds[i][0] for i in range(lo, min(len(ds), lo + 250))]).mean(2)  # [B, T, H, W]
        feats.append(torch.nn.functional.avg_pool2d(x, ds.size // 8).flatten(2))
    return torch.cat(feats), torch.tensor([i % ds.num_classes for i in range(len(ds))])


def _probe(xtr, ytr, xva, yva, per_frame: bool = False, epochs: int = 20, seed: int = 0) -> float:
    """Held-out accuracy of a 2-hidden-layer MLP (Adam). ``per_frame``: inputs ``[N, T, F]``;
    the MLP sees one frame at a time and its logits are averaged over T (like the spatial-only
    model with no temporal state)."""
    torch.manual_seed(seed)
    xtr, xva = (xtr, xva) if per_frame else (xtr.flatten(1), xva.flatten(1))
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    xtr, xva = (xtr - mu) / sd, (xva - mu) / sd
    f = xtr.shape[-1]
    net = torch.nn.Sequential(torch.nn.Linear(f, 128), torch.nn.ReLU(), torch.nn.Linear(128, 128),
                              torch.nn.ReLU(), torch.nn.Linear(128, int(ytr.max()) + 1))
    model = (lambda x: net(x).mean(1)) if per_frame else net
    opt = torch.optim.Adam(net.parameters(), 1e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for b in torch.randperm(len(xtr), generator=g).split(128):
            loss = torch.nn.functional.cross_entropy(model(xtr[b]), ytr[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return float((model(xva).argmax(1) == yva).float().mean())


@pytest.fixture(scope="module")
def pooled():
    torch.set_num_threads(1)
    return _pooled(DigitRelay("train", num_samples=3000)) + _pooled(DigitRelay("val", num_samples=1000))


def probe_accuracies(xtr, ytr, xva, yva, seed: int = 0) -> dict[str, float]:
    """The probes of the test: blind views, then the temporal positive control."""
    views = {"frame_0": lambda x: x[:, 0], "frame_3": lambda x: x[:, 3], "frame_average": lambda x: x.mean(1),
             "frame_differences": lambda x: (x[:, 1:] - x[:, :-1]).abs(), "all_frames": lambda x: x}
    acc = {k: _probe(v(xtr), ytr, v(xva), yva, seed=seed) for k, v in views.items()}
    acc["per_frame_model"] = _probe(xtr, ytr, xva, yva, per_frame=True, seed=seed)
    return acc


def test_no_single_frame_frame_average_or_per_frame_model_tells_the_class(pooled):
    acc = probe_accuracies(*pooled)
    print("DigitRelay probe accuracies (chance 0.25):", {k: round(v, 3) for k, v in acc.items()})
    for view in ("frame_0", "frame_3", "frame_average", "per_frame_model"):
        assert abs(acc[view] - CHANCE) < MARGIN, acc
    assert acc["frame_differences"] > 0.9, acc  # the same probe does learn from temporal change
    assert acc["all_frames"] > 0.8, acc  # ... and from the raw frames in order


# ---------------------------------------------------------------- arguments and the builder
@pytest.mark.parametrize("kwargs, err", [
    (dict(split="training"), ValueError), (dict(num_classes=3), ValueError),
    (dict(num_classes=True), ValueError), (dict(num_frames=7), ValueError),
    (dict(size=30), ValueError), (dict(size=65), ValueError), (dict(channels=2), ValueError),
    (dict(digit_scale=40), ValueError), (dict(hop=32), ValueError), (dict(num_samples=2.5), TypeError),
    (dict(seed=-1), ValueError), (dict(jitter=9), ValueError), (dict(jitter=-1), ValueError),
    (dict(gap=3), ValueError), (dict(gap=0), ValueError), (dict(num_frames=10), ValueError),
    (dict(event="blink"), ValueError), (dict(dim=1.0), ValueError), (dict(dim=-0.1), ValueError),
])
def test_bad_arguments(kwargs, err):
    with pytest.raises(err):
        DigitRelay(**kwargs)


def test_bad_index():
    ds = DigitRelay("train", num_samples=3)
    with pytest.raises(IndexError, match="out of range"):
        ds[3]
    with pytest.raises(TypeError, match="index must be an int"):
        ds.clip_params(1.0)


def _data_cfg(**kw):
    base = dict(dataset="digit_relay", size=64, num_frames=8, train_samples=6, val_samples=4, modality="rgb")
    return SimpleNamespace(**{**base, **kw})


def test_builder_is_registered_and_builds_both_splits():
    assert "digit_relay" in dataset_names("classification")
    data = build_dataset("classification", _data_cfg(), num_classes=4, seed=1)
    assert len(data.train) == 6 and len(data.val) == 4 and data.classes == RELAY_CLASSES[4]
    assert data.train.split == "train" and data.val.split == "val" and data.train.seed == 1
    grey = build_dataset("classification", _data_cfg(modality="gray", size=96, num_frames=12), num_classes=2)
    clip, _ = grey.train[0]
    assert clip.shape == (12, 1, 96, 96) and grey.classes == RELAY_CLASSES[2]


@pytest.mark.parametrize("change, key", [
    (dict(size=32), "data.size >= 64, got 32"), (dict(num_frames=4), "data.num_frames >= 8 and a multiple of 4, got 4"),
    (dict(num_frames=10), "data.num_frames >= 8 and a multiple of 4, got 10"),
    (dict(num_classes=3), r"model.num_classes one of \[2, 4\], got 3"),
    (dict(modality="event"), "data.modality rgb or gray, got 'event'"),
])
def test_builder_errors_name_the_key_and_value(change, key):
    num_classes = change.pop("num_classes", 4)
    with pytest.raises(ValueError, match=key):
        build_dataset("classification", _data_cfg(**change), num_classes=num_classes)


@pytest.mark.slow
def test_spatial_model_without_temporal_state_stays_at_chance(tmp_path):
    """svf_tiny with spatial attention and no temporal state sees a bag of frames: chance."""
    from spikevideoformer.engine.named_configs import load_named_config
    from spikevideoformer.tasks.fit import fit_task

    torch.set_num_threads(1)
    cfg = load_named_config("relay", ["model.design=spatial", "model.temporal_state=false",
                                      "data.train_samples=512", "data.val_samples=512", "optim.epochs=2"],
                            out_dir=tmp_path)
    result = fit_task(cfg, progress=False)
    print("spatial, no temporal state: val_acc", result["val_acc"], "best", result["best_metric"])
    assert abs(result["val_acc"] - CHANCE) < 0.08  # 512 clips: binomial std 0.019


@pytest.mark.parametrize("design", ["joint", "spatial"])
def test_the_ann_counterpart_is_blind_to_frame_order_and_the_spiking_model_is_not(design):
    """Only LIF membranes carry frame order: the ANN counterpart (ReLU, softmax attention, no
    time embedding) gives the same output for any permutation of the frames, so DigitRelay is
    beyond it; the spiking model's output changes."""
    from spikevideoformer.models import create_model

    torch.manual_seed(0)
    x = torch.stack([DigitRelay("val", num_samples=2)[i][0] for i in range(2)])
    perm = torch.tensor([3, 0, 6, 1, 7, 2, 5, 4])
    ann = create_model("svf_tiny", num_classes=4, neuron="relu", attention="softmax", design=design).eval()
    snn = create_model("svf_tiny", num_classes=4, design=design).train()  # batch statistics: fires
    with torch.no_grad():
        a, b = ann(x), ann(x[:, perm])
        assert float(a.abs().max()) > 1e-3
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
        assert_fires(snn, lambda: snn(x))
        state = {k: v.clone() for k, v in snn.state_dict().items()}
        s = snn(x)
        snn.load_state_dict(state)
        assert not torch.allclose(s, snn(x[:, perm]), rtol=1e-3, atol=1e-4)


@pytest.mark.slow
def test_spatial_svf_tiny_learns_digit_relay(tmp_path):
    """The relay config with spatial attention learns the task (DigitRelay ablation study,
    AMD EPYC, 1 thread: best val acc 0.742 / 0.953 / 0.945 for seeds 0-2; ~4.5 min)."""
    from spikevideoformer.engine.named_configs import load_named_config
    from spikevideoformer.tasks.fit import fit_task

    cfg = load_named_config("relay", ["model.design=spatial", "run.seed=1"], out_dir=tmp_path)
    result = fit_task(cfg, progress=False)
    print("spatial svf_tiny on DigitRelay: best val_acc", result["best_metric"])
    assert result["best_metric"] >= 0.6 and result["nonfinite_grad_steps"] == 0
