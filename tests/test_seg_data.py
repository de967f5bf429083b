import os
import random
import time

import numpy as np
import pytest
import torch
from PIL import Image

from spikevideoformer.tasks.segmentation import (
    CITYSCAPES_CLASSES, CityscapesSequenceDataset, SegEvalTransform, SegTrainTransform, SyntheticSegVideos,
    VSPWDataset, cityscapes_labelids_to_trainids, denormalize, majority_class_baseline, normalize, random_crop,
    random_flip, random_scale, resize, save_segmentation_panel,
)


# ----------------------------------------------------------------- transforms
def _coded_clip(t=3, h=48, w=40, block=8, seed=0):
    """Blocky per-frame class maps (0..4); every pixel's grey level is class / 4."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, 5, (t, h // block, w // block), generator=g)
    masks = coarse.repeat_interleave(block, 1).repeat_interleave(block, 2)
    clip = (masks.float() / 4.0)[:, None].repeat(1, 3, 1, 1)
    return clip, masks


def _interior(masks):
    """Pixels whose 3x3 neighbourhood carries one label (bilinear output is exact there)."""
    m = masks.float()[:, None]
    mx = torch.nn.functional.max_pool2d(m, 3, 1, 1)
    mn = -torch.nn.functional.max_pool2d(-m, 3, 1, 1)
    return (mx == mn)[:, 0]


@pytest.mark.parametrize("seed", range(6))
def test_train_transform_keeps_frames_and_masks_aligned(seed):
    clip, masks = _coded_clip(seed=seed)
    tf = SegTrainTransform(crop_size=(56, 44), scale_range=(0.6, 1.6), do_normalize=False)
    out, om = tf(clip, masks, rng=np.random.default_rng(seed))
    assert out.shape == (3, 3, 56, 44) and om.shape == (3, 56, 44) and om.dtype == torch.int64
    decoded = torch.round(out[:, 0] * 4).long()
    valid = om != 255
    assert bool((out[:, :, ~valid[0]] == 0).all())  # padding is zero in the frames
    check = valid & _interior(om)
    assert check.sum() > 0.3 * valid.sum()
    assert torch.equal(decoded[check], om[check])
    assert torch.equal(out[:, 0], out[:, 2])  # channels transformed identically


def test_mask_values_never_interpolated():
    g = torch.Generator().manual_seed(1)
    masks = torch.tensor([3, 7, 11])[torch.randint(0, 3, (2, 30, 26), generator=g)]
    clip = torch.rand(2, 3, 30, 26, generator=g)
    for seed in range(10):
        r = random.Random(seed)
        c, m = random_scale(clip, masks, (0.3, 2.5), r)
        c, m = random_crop(c, m, 40, r)
        c, m = random_flip(c, m, r)
        assert set(m.unique().tolist()) <= {3, 7, 11, 255}
    c, m = resize(clip, masks, (17, 9))
    assert c.shape == (2, 3, 17, 9) and set(m.unique().tolist()) <= {3, 7, 11}


def test_flip_crop_rng_types_and_normalize():
    clip, masks = _coded_clip()
    c1, m1 = random_flip(clip, masks, torch.Generator().manual_seed(0), p=1.0)
    assert torch.equal(m1, masks.flip(-1)) and torch.equal(c1, clip.flip(-1))
    a = random_crop(clip, masks, 16, np.random.default_rng(5))
    b = random_crop(clip, masks, 16, np.random.default_rng(5))
    assert torch.equal(a[1], b[1])
    assert torch.allclose(denormalize(normalize(clip)), clip, atol=1e-6)
    c, m = SegEvalTransform(size=24)(clip, masks)
    assert c.shape == (3, 3, 24, 24) and m.shape == (3, 24, 24)
    with pytest.raises(ValueError):
        random_crop(clip, masks[:2], 8)
    with pytest.raises(ValueError):
        random_scale(clip, masks, (0, 1))


# ----------------------------------------------------------------- VSPW
def _write_vspw(root, videos=("vid_a", "vid_b"), n=6, h=12, w=16):
    for v, name in enumerate(videos):
        for k in ("origin", "mask"):
            os.makedirs(root / "data" / name / k)
        for f in range(n):
            img = np.full((h, w, 3), 40 * f, np.uint8)
            Image.fromarray(img).save(root / "data" / name / "origin" / f"{f:08d}.jpg")
            m = np.full((h, w), 10 * v + f, np.uint8)
            m[0, 0] = 255
            Image.fromarray(m, mode="L").save(root / "data" / name / "mask" / f"{f:08d}.png")
    (root / "train.txt").write_text("vid_a\nvid_b\n")
    (root / "val.txt").write_text("vid_b\n")


def test_vspw_eval_windows(tmp_path):
    _write_vspw(tmp_path)
    ds = VSPWDataset(tmp_path, "val", num_frames=4, normalize=False, return_meta=True)
    assert not ds.train and len(ds) == 2  # windows [0..3] and [2..5]
    clip, masks, meta = ds[0]
    assert clip.shape == (4, 3, 12, 16) and clip.dtype == torch.float32 and 0 <= clip.min() <= clip.max() <= 1
    assert masks.shape == (4, 12, 16) and masks.dtype == torch.int64
    assert masks[:, 5, 5].tolist() == [10, 11, 12, 13] and masks[0, 0, 0] == 255
    _, masks, meta = ds[1]
    assert meta["frames"].tolist() == [2, 3, 4, 5] and meta["new"].tolist() == [False, False, True, True]
    assert masks[:, 5, 5].tolist() == [255, 255, 14, 15]


def test_vspw_train_sampling_and_splits(tmp_path):
    _write_vspw(tmp_path)
    torch.manual_seed(0)
    ds = VSPWDataset(tmp_path, "train", num_frames=3, size=8, scale_range=(1.0, 1.0))
    assert ds.train and len(ds) == 2 and [v for v, _ in ds.videos] == ["vid_a", "vid_b"]
    for i in range(2):
        clip, masks = ds[i]
        assert clip.shape == (3, 3, 8, 8) and masks.shape == (3, 8, 8)
        vals = [int(masks[t][masks[t] != 255].unique()[0]) for t in range(3)]
        assert vals[1] == vals[0] + 1 and vals[2] == vals[0] + 2 and vals[0] // 10 == i
    small = VSPWDataset(tmp_path, "val", num_frames=8)
    assert len(small) == 1 and small[0][1][6:].eq(255).all()  # short video: repeated frames ignored
    with pytest.raises(FileNotFoundError, match="test.txt"):
        VSPWDataset(tmp_path, "test")
    with pytest.raises(FileNotFoundError):
        VSPWDataset(tmp_path / "nope", "train")


def test_vspw_skips_corrupt_png(tmp_path):
    _write_vspw(tmp_path)
    bad = tmp_path / "data" / "vid_b" / "mask" / "00000001.png"
    bad.write_bytes(b"not a png at all")
    ds = VSPWDataset(tmp_path, "val", num_frames=4, return_meta=True)
    with pytest.warns(UserWarning, match="00000001.png"):
        clip, masks, meta = ds[0]
    assert meta["frames"].tolist() == [2, 3, 4, 5] and ds.skipped == 1
    ds[0]  # known-bad sample is skipped silently now
    assert ds.skipped == 1
    with pytest.warns(UserWarning):
        verified = VSPWDataset(tmp_path, "val", num_frames=4, verify=True)
    assert len(verified) == 1


# ----------------------------------------------------------------- Cityscapes
def _write_cityscapes(root, frames=range(16, 20), h=8, w=10):
    seq = root / "leftImg8bit_sequence" / "val" / "aachen"
    gt = root / "gtFine" / "val" / "aachen"
    seq.mkdir(parents=True)
    gt.mkdir(parents=True)
    for f in frames:
        Image.fromarray(np.full((h, w, 3), 10 * f, np.uint8)).save(seq / f"aachen_000000_{f:06d}_leftImg8bit.png")
    lab = np.zeros((h, w), np.uint8)
    lab[:, :5] = 26  # car
    lab[0, :] = 7  # road
    lab[1, :] = 33  # bicycle
    lab[2, :] = 4  # static -> ignore
    Image.fromarray(lab).save(gt / "aachen_000000_000019_gtFine_labelIds.png")
    Image.fromarray(lab).save(gt / "aachen_000001_000019_gtFine_labelIds.png")  # its frames are missing
    return lab


def test_cityscapes_sequence(tmp_path):
    lab = _write_cityscapes(tmp_path)
    with pytest.warns(UserWarning, match="aachen_000001"):
        ds = CityscapesSequenceDataset(tmp_path, "val", num_frames=4, normalize=False, return_meta=True)
    assert len(ds) == 1 and ds.skipped == 1 and len(ds.class_names) == 19 and ds.class_names[13] == "car"
    clip, masks, meta = ds[0]
    assert clip.shape == (4, 3, 8, 10) and masks.shape == (4, 8, 10) and masks.dtype == torch.int64
    assert meta["frames"].tolist() == [16, 17, 18, 19]
    assert clip[:, 0, 4, 4].mul(255).round().tolist() == [160, 170, 180, 190]
    assert bool((masks[:3] == 255).all())
    expected = torch.from_numpy(cityscapes_labelids_to_trainids(lab))
    assert torch.equal(masks[3], expected)
    assert masks[3, 0, 0] == 0 and masks[3, 1, 0] == 18 and masks[3, 2, 0] == 255
    assert masks[3, 5, 0] == 13 and masks[3, 5, 9] == 255
    assert len(CITYSCAPES_CLASSES) == 19
    ids = np.arange(34)
    assert int((cityscapes_labelids_to_trainids(ids) != 255).sum()) == 19


def test_cityscapes_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="gtFine"):
        CityscapesSequenceDataset(tmp_path, "val")
    _write_cityscapes(tmp_path, frames=[19])
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no usable"):
        CityscapesSequenceDataset(tmp_path, "val", num_frames=4)
    with pytest.warns(UserWarning, match="aachen_000001"):
        ds = CityscapesSequenceDataset(tmp_path, "val", num_frames=1)
    assert len(ds) == 1 and ds.skipped == 1
    (tmp_path / "gtFine/val/aachen/aachen_000000_000019_gtFine_labelIds.png").write_bytes(b"\x89PNG broken")
    with pytest.warns(UserWarning, match="aachen_000000_000019_gtFine"), pytest.raises(ValueError, match="unreadable"):
        ds[0]
    assert ds.skipped == 2 and ds.bad_files[-1].endswith("aachen_000000_000019_gtFine_labelIds.png")


# ----------------------------------------------------------------- synthetic
def test_synthetic_determinism_shapes_and_splits():
    a = SyntheticSegVideos("train", 8, seed=3)
    b = SyntheticSegVideos("train", 8, seed=3)
    c, m = a[2]
    assert c.shape == (8, 3, 64, 64) and c.dtype == torch.float32 and m.shape == (8, 64, 64) and m.dtype == torch.int64
    assert 0.0 <= float(c.min()) and float(c.max()) <= 1.0 and set(m.unique().tolist()) <= {0, 1, 2, 3}
    assert torch.equal(c, b[2][0]) and torch.equal(m, b[2][1])
    val = SyntheticSegVideos("val", 8, seed=3)
    for i in range(8):
        for j in range(8):
            assert not torch.equal(a[i][0], val[j][0])
    assert not torch.equal(SyntheticSegVideos("train", 8, seed=4)[2][0], c)
    with pytest.raises(ValueError):
        SyntheticSegVideos("bogus", 4)


def test_synthetic_classes_motion_and_speed():
    ds = SyntheticSegVideos("train", 12, num_frames=8, size=64, num_classes=4)
    seen = set()
    for i in range(6):
        seen |= set(ds[i][1].unique().tolist())
    assert seen == {0, 1, 2, 3}
    for i in range(12):
        _, masks, info = ds.generate(i)
        front = info["instances"] == len(info["classes"])  # topmost object: never occluded
        area = front.sum((1, 2)).float()
        assert float(area.min()) > 0 and float(area.max() / area.min()) < 1.3
        assert bool((masks[front] == info["classes"][-1]).all())
        cy = [(front[t].nonzero()[:, 0].float().mean()) for t in range(8)]
        steps = torch.tensor([cy[t + 1] - cy[t] for t in range(7)])
        assert float(steps.abs().max()) < 4.0  # smooth motion
    t0 = time.perf_counter()
    for i in range(12):
        ds[i]
    assert (time.perf_counter() - t0) / 12 < 0.05  # ~5 ms on one core; loose for shared CI


def test_majority_baseline():
    ds = SyntheticSegVideos("val", 6)
    miou = majority_class_baseline(ds)
    counts = torch.bincount(torch.cat([ds[i][1].flatten() for i in range(6)]), minlength=4)
    assert miou == pytest.approx(float(counts[0]) / counts.sum().item() / 4)
    toy = [(None, torch.tensor([[0, 1], [1, 255]]))]
    assert majority_class_baseline(toy, num_classes=3) == pytest.approx((2 / 3) / 2)


# ----------------------------------------------------------------- visualise
def test_save_panel(tmp_path):
    clip, masks = SyntheticSegVideos("train", 1, num_frames=8, size=32)[0]
    path = tmp_path / "sub" / "panel.png"
    out = save_segmentation_panel(normalize(clip), masks, masks.roll(1, 0), path, max_frames=4)
    assert out == str(path) and os.listdir(path.parent) == ["panel.png"]
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > im.size[1] > 50
    with pytest.raises(ValueError):
        save_segmentation_panel(clip, masks[:, :8], None, path)
