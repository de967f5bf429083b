"""Tests for the MovingDigits temporal classification dataset."""
import hashlib

import numpy as np
import pytest
import torch

from spikevideoformer.data.moving_digits import MovingDigits, digit_split_indices, load_digit_images


def _stack(ds, n=None):
    n = len(ds) if n is None else n
    items = [ds[i] for i in range(n)]
    return torch.stack([c for c, _ in items]), np.array([l for _, l in items])


def test_shapes_dtype_range_and_classes():
    ds = MovingDigits("train", num_samples=12, num_frames=6, size=40, channels=3)
    clip, label = ds[5]
    assert clip.shape == (6, 3, 40, 40) and clip.dtype == torch.float32
    assert 0.0 <= float(clip.min()) and float(clip.max()) <= 1.0 and float(clip.max()) > 0.5
    assert isinstance(label, int) and 0 <= label < 4
    assert ds.classes == ["left+up", "left+down", "right+up", "right+down"]
    grey = MovingDigits("val", num_samples=4, num_classes=2, channels=1)
    c, l = grey[1]
    assert c.shape == (8, 1, 32, 32) and grey.classes == ["left", "right"] and l in (0, 1)
    assert float(c.max()) > 0.5  # single digit drawn at full intensity
    assert len(ds) == 12 and ds[-1][1] == ds[11][1]


def test_determinism_within_and_across_instances():
    a = MovingDigits("train", num_samples=20, seed=3)
    b = MovingDigits("train", num_samples=20, seed=3)
    for i in (0, 7, 19):
        x1, y1 = a[i]
        x2, y2 = a[i]
        x3, y3 = b[i]
        assert torch.equal(x1, x2) and torch.equal(x1, x3) and y1 == y2 == y3
    c = MovingDigits("train", num_samples=20, seed=4)
    assert not torch.equal(a[0][0], c[0][0])
    assert not torch.equal(a[0][0], a[4][0])  # same label, different clip


def test_splits_are_disjoint():
    pools = {s: set(digit_split_indices(s).tolist()) for s in ("train", "val", "test")}
    assert not pools["train"] & pools["val"] and not pools["train"] & pools["test"]
    assert not pools["val"] & pools["test"]
    assert len(pools["train"] | pools["val"] | pools["test"]) == load_digit_images().shape[0] == 1797
    assert abs(len(pools["train"]) - 0.7 * 1797) < 2
    tr = MovingDigits("train", num_samples=200)
    va = MovingDigits("val", num_samples=200)
    for ds, split in ((tr, "train"), (va, "val")):
        used = {m["digit"] for i in range(len(ds)) for m in ds.clip_params(i)["movers"]}
        assert used <= pools[split]
    hashes = lambda ds: {hashlib.sha1(ds[i][0].numpy().tobytes()).hexdigest() for i in range(len(ds))}
    h_tr, h_va = hashes(tr), hashes(va)
    assert len(h_tr) == 200 and not h_tr & h_va


def test_label_balance():
    for k in (2, 4):
        ds = MovingDigits("train", num_samples=103, num_classes=k)
        counts = np.bincount([ds[i][1] for i in range(len(ds))], minlength=k)
        assert counts.max() - counts.min() <= 1


def test_motion_matches_label():
    ds = MovingDigits("test", num_samples=8, speed=3.0)
    for i in range(8):
        p = ds.clip_params(i)
        h, v = p["movers"]
        assert h["axis"] == 1 and v["axis"] == 0
        assert ds.classes[p["label"]] == ("right" if h["velocity"] > 0 else "left") + "+" + (
            "down" if v["velocity"] > 0 else "up")


@pytest.mark.parametrize("kwargs, err", [
    (dict(split="training"), ValueError), (dict(num_classes=3), ValueError),
    (dict(num_frames=1), ValueError), (dict(speed=-1.0), ValueError),
    (dict(speed="fast"), TypeError), (dict(size=16, digit_scale=20), ValueError),
    (dict(num_samples=2.5), TypeError), (dict(speed=16.0), ValueError),
])
def test_bad_arguments(kwargs, err):
    with pytest.raises(err):
        MovingDigits(**kwargs)


def _random_conv_features(x, num_filters=64, k=7, seed=0):
    """Fixed random conv bank + ReLU + global mean/max pooling (a translation-invariant probe)."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(num_filters, x.shape[1], k, k, generator=g)
    w -= w.mean(dim=(1, 2, 3), keepdim=True)
    b = 0.5 * torch.randn(num_filters, generator=g)
    y = torch.relu(torch.nn.functional.conv2d(torch.nn.functional.pad(x, (k // 2,) * 4, mode="circular"), w, b))
    return torch.cat([y.mean((2, 3)), y.amax((2, 3))], 1).numpy()


def _probe_accuracy(view, xtr, ytr, xva, yva):
    from sklearn.linear_model import LogisticRegression

    a, b = _random_conv_features(view(xtr)), _random_conv_features(view(xva))
    mu, sd = a.mean(0), a.std(0) + 1e-6
    clf = LogisticRegression(max_iter=1000).fit((a - mu) / sd, ytr)
    return clf.score((b - mu) / sd, yva)


def test_label_is_only_temporal():
    """Same probe: chance on one frame / frame average, far above chance on motion."""
    torch.set_num_threads(1)
    xtr, ytr = _stack(MovingDigits("train", num_samples=1000))
    xva, yva = _stack(MovingDigits("val", num_samples=600))
    views = {
        "single_frame": lambda x: x[:, 3],
        "frame_average": lambda x: x.mean(1),
        "frame_difference": lambda x: x[:, 4] - x[:, 3],
        "clip_concat": lambda x: x.mean(2),  # all T grey frames as channels
    }
    acc = {k: _probe_accuracy(v, xtr, ytr, xva, yva) for k, v in views.items()}
    print("MovingDigits probe accuracies (chance 0.25):", {k: round(v, 3) for k, v in acc.items()})
    chance = 0.25
    assert acc["single_frame"] < chance + 0.1, acc
    assert acc["frame_average"] < chance + 0.1, acc
    assert acc["frame_difference"] > 0.7, acc
    assert acc["clip_concat"] > 0.7, acc
