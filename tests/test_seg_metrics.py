import math

import numpy as np
import pytest
import torch

from spikevideoformer.tasks.segmentation.metrics import ConfusionMatrix, MeanVideoConsistency, video_consistency


def _hand_case():
    target = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]])
    pred = target.clone()
    pred[2, 0] = 0
    pred[3, 3] = 0
    return pred, target


def test_perfect_prediction():
    t = torch.randint(0, 5, (2, 3, 8, 8))
    cm = ConfusionMatrix(5)
    cm.update(t, t)
    r = cm.compute()
    assert r["miou"] == pytest.approx(1.0) and r["pixel_acc"] == 1.0 and r["mean_acc"] == 1.0


def test_two_class_by_hand():
    pred, target = _hand_case()
    cm = ConfusionMatrix(2)
    cm.update(pred, target)
    assert cm.matrix.tolist() == [[8, 0], [2, 6]]
    r = cm.compute()
    assert r["per_class_iou"] == pytest.approx([8 / 10, 6 / 8])
    assert r["miou"] == pytest.approx(0.775)
    assert r["pixel_acc"] == pytest.approx(14 / 16)
    assert r["mean_acc"] == pytest.approx((1 + 0.75) / 2)


def test_ignore_pixels_excluded():
    pred, target = _hand_case()
    target = target.clone()
    pred = pred.clone()
    target[0, :] = 255  # ignored row, with wrong and even out-of-range predictions
    pred[0, :2] = 1
    pred[0, 2:] = 77
    cm = ConfusionMatrix(2)
    cm.update(pred, target)
    assert cm.matrix.tolist() == [[4, 0], [2, 6]]


def test_absent_class_nan_and_excluded():
    pred, target = _hand_case()
    cm = ConfusionMatrix(3)
    cm.update(pred.numpy(), target.numpy())  # numpy input accepted
    r = cm.compute()
    assert math.isnan(r["per_class_iou"][2])
    assert r["miou"] == pytest.approx(0.775)
    assert r["mean_acc"] == pytest.approx(0.875)
    text = cm.table(["road", "car", "bus"])
    assert "road" in text and "n/a" in text and "77.50" in text


def test_merge_equals_joint_update():
    g = torch.Generator().manual_seed(0)
    p = torch.randint(0, 4, (4, 6, 6), generator=g)
    t = torch.randint(0, 4, (4, 6, 6), generator=g)
    a, b, whole = ConfusionMatrix(4), ConfusionMatrix(4), ConfusionMatrix(4)
    a.update(p[:2], t[:2])
    b.update(p[2:], t[2:])
    whole.update(p, t)
    assert torch.equal(a.merge(b).matrix, whole.matrix)
    with pytest.raises(ValueError):
        a.merge(ConfusionMatrix(3))


def test_bad_inputs():
    cm = ConfusionMatrix(2)
    with pytest.raises(ValueError, match="shape"):
        cm.update(torch.zeros(2, 2, dtype=torch.long), torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="target"):
        cm.update(torch.zeros(2, 2, dtype=torch.long), torch.full((2, 2), 5))
    with pytest.raises(ValueError, match="pred"):
        cm.update(torch.full((2, 2), 2), torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        cm.update(torch.zeros(2, 2), torch.zeros(2, 2, dtype=torch.long))


def test_vc_constant_is_one():
    gts = torch.full((10, 4, 4), 3)
    preds = torch.full((10, 4, 4), 1)  # wrong but consistent
    assert video_consistency(preds, gts, 8) == 1.0


def test_vc_flicker_by_hand():
    gts = torch.zeros(9, 4, 4, dtype=torch.long)
    preds = torch.zeros(9, 4, 4, dtype=torch.long)
    preds[0, 1, 1] = 2  # flicker in the first frame only
    preds[0, 2, 3] = 1
    # window [0..7]: 14/16 consistent; window [1..8]: 16/16
    assert video_consistency(preds, gts, 8) == pytest.approx((14 / 16 + 1.0) / 2)
    assert video_consistency(preds[:8], gts[:8], 8) == pytest.approx(14 / 16)


def test_vc_excludes_changing_gt_and_ignore():
    gts = torch.zeros(8, 4, 4, dtype=torch.long)
    preds = torch.zeros(8, 4, 4, dtype=torch.long)
    gts[4:, 0, 0] = 1  # gt changes here -> not in the consistent region
    preds[5, 0, 0] = 3  # flicker there does not count
    gts[:, 3, 3] = 255  # ignored pixel
    preds[2, 3, 3] = 1
    preds[6, 1, 2] = 1  # one real inconsistency among 14 region pixels
    assert video_consistency(preds, gts, 8) == pytest.approx(13 / 14)


def test_mean_video_consistency():
    mvc = MeanVideoConsistency(windows=(8, 16))
    gts = torch.zeros(10, 2, 2, dtype=torch.long)
    p1 = torch.zeros(10, 2, 2, dtype=torch.long)
    p2 = p1.clone()
    p2[9, 0, 0] = 1  # video 2: windows [0..7]=1, [1..8]=1, [2..9]=3/4
    mvc.update(p1, gts)
    out = mvc.update(p2, gts)
    assert math.isnan(out[16])
    r = mvc.compute()
    assert r["mVC_8"] == pytest.approx((1.0 + (1 + 1 + 0.75) / 3) / 2)
    assert math.isnan(r["mVC_16"])
    assert math.isnan(video_consistency(p1[:5], gts[:5], 8))
    other = MeanVideoConsistency(windows=(8, 16))
    other.update(p1, gts)
    assert mvc.merge(other).compute()["mVC_8"] == pytest.approx((2.0 + 2.75 / 3) / 3)
