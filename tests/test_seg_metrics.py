import math

import numpy as np
import pytest
import torch

from spikevideoformer.tasks.segmentation.metrics import (
    ConfusionMatrix, MeanVideoConsistency, video_consistency, window_consistency)


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
    assert video_consistency(preds, gts, 8, definition="vspw") == 1.0


def test_vc_flicker_by_hand():
    gts = torch.zeros(9, 4, 4, dtype=torch.long)
    preds = torch.zeros(9, 4, 4, dtype=torch.long)
    preds[0, 1, 1] = 2  # flicker in the first frame only
    preds[0, 2, 3] = 1
    # all_windows: window [0..7]: 14/16 consistent; window [1..8]: 16/16
    assert video_consistency(preds, gts, 8, definition="all_windows") == pytest.approx((14 / 16 + 1.0) / 2)
    assert video_consistency(preds[:8], gts[:8], 8, definition="all_windows") == pytest.approx(14 / 16)
    # vspw: starts range(9 - 8) = {0} only; an 8-frame video has no window
    assert video_consistency(preds, gts, 8, definition="vspw") == pytest.approx(14 / 16)
    assert math.isnan(video_consistency(preds[:8], gts[:8], 8, definition="vspw"))


def test_vc_excludes_changing_gt_and_ignore():
    gts = torch.zeros(8, 4, 4, dtype=torch.long)
    preds = torch.zeros(8, 4, 4, dtype=torch.long)
    gts[4:, 0, 0] = 1  # gt changes here -> not in the consistent region
    preds[5, 0, 0] = 3  # flicker there does not count
    gts[:, 3, 3] = 255  # ignored pixel
    preds[2, 3, 3] = 1
    preds[6, 1, 2] = 1  # one real inconsistency among 14 region pixels
    assert video_consistency(preds, gts, 8, definition="all_windows") == pytest.approx(13 / 14)
    # vspw on 9 frames (frame 8 = frame 7): window [0..7] keeps the 255 pixel: 13/15 consistent
    preds9, gts9 = torch.cat([preds, preds[-1:]]), torch.cat([gts, gts[-1:]])
    assert video_consistency(preds9, gts9, 8, definition="vspw") == pytest.approx(13 / 15)


def _vc_hand_videos():
    """Two 2x2 videos scored with window 3 (hand-computed in test_vc_definitions_by_hand)."""
    # video A, T = 5; pixel (row, col) over frames 0..4
    gts_a = torch.zeros(5, 2, 2, dtype=torch.long)
    preds_a = torch.zeros(5, 2, 2, dtype=torch.long)
    preds_a[4, 0, 0] = 1                               # (0,0): gt 0 0 0 0 0, pred 0 0 0 0 1 (last frame flickers)
    gts_a[:, 0, 1] = 255                               # (0,1): gt 255 x5,   pred 0 1 0 0 0
    preds_a[1, 0, 1] = 1
    gts_a[:, 1, 0] = 1                                 # (1,0): gt 1 x5,     pred 1 x5
    preds_a[:, 1, 0] = 1
    gts_a[:, 1, 1] = torch.tensor([2, 2, 2, 3, 3])     # (1,1): gt 2 2 2 3 3, pred 0 x5 (wrong, consistent)
    # video B, T = 4: gt 0 everywhere, pred 0 except pixel (0,0) in frame 0
    gts_b = torch.zeros(4, 2, 2, dtype=torch.long)
    preds_b = torch.zeros(4, 2, 2, dtype=torch.long)
    preds_b[0, 0, 0] = 1
    return (preds_a, gts_a), (preds_b, gts_b)


def test_vc_definitions_by_hand():
    (pa, ga), (pb, gb) = _vc_hand_videos()
    # vspw, video A: starts range(5 - 3) = {0, 1}; 255 counts as a label.
    #   [0..2]: region (0,0) (0,1) (1,0) (1,1) = 4; pred same at (0,0) (1,0) (1,1) -> 3/4
    #   [1..3]: region (0,0) (0,1) (1,0) = 3 ((1,1) gt 2 2 3); pred same at (0,0) (1,0) -> 2/3
    assert window_consistency(pa, ga, 3, definition="vspw") == pytest.approx([3 / 4, 2 / 3])
    assert video_consistency(pa, ga, 3, definition="vspw") == pytest.approx((3 / 4 + 2 / 3) / 2)  # 17/24
    # all_windows, video A: starts {0, 1, 2}; the 255 pixel (0,1) is not in any region.
    #   [0..2]: region (0,0) (1,0) (1,1), all consistent -> 1
    #   [1..3]: region (0,0) (1,0), both consistent -> 1
    #   [2..4]: region (0,0) (1,0); (0,0) pred 0 0 1 -> 1/2   (the last window)
    assert window_consistency(pa, ga, 3, definition="all_windows") == pytest.approx([1, 1, 1 / 2])
    assert video_consistency(pa, ga, 3, definition="all_windows") == pytest.approx(5 / 6)
    assert video_consistency(pa, ga, 3, definition="all_windows") == pytest.approx(5 / 6)
    assert video_consistency(pa, ga, 3) == video_consistency(pa, ga, 3, definition="vspw")  # default
    # video B: vspw start {0}: [0..2] 3/4;  all_windows starts {0, 1}: 3/4, 1 -> 7/8
    assert window_consistency(pb, gb, 3, definition="vspw") == pytest.approx([3 / 4])
    assert video_consistency(pb, gb, 3, definition="all_windows") == pytest.approx(7 / 8)
    # T == window: no vspw window; all_windows scores it
    assert window_consistency(pa[:3], ga[:3], 3, definition="vspw") == []
    assert math.isnan(video_consistency(pa[:3], ga[:3], 3, definition="vspw"))
    assert video_consistency(pa[:3], ga[:3], 3, definition="all_windows") == 1.0


def test_mvc_definitions_by_hand():
    (pa, ga), (pb, gb) = _vc_hand_videos()
    vspw = MeanVideoConsistency(windows=(3, 8), definition="vspw")
    assert vspw.update(pa, ga)[3] == pytest.approx(17 / 24)
    vspw.update(pb, gb)
    # vspw pools windows over videos: (3/4 + 2/3 + 3/4) / 3 = 13/18 (per-video mean would be 35/48)
    r = vspw.compute()
    assert r["mVC_3"] == pytest.approx(13 / 18)
    assert math.isnan(r["mVC_8"])
    old = MeanVideoConsistency(windows=(3,), definition="all_windows")
    old.update(pa, ga)
    old.update(pb, gb)
    assert old.compute()["mVC_3"] == pytest.approx((5 / 6 + 7 / 8) / 2)  # mean over videos: 41/48
    with pytest.raises(ValueError, match="definition"):
        vspw.merge(MeanVideoConsistency(windows=(3, 8), definition="all_windows"))
    with pytest.raises(ValueError, match="definition"):
        video_consistency(pa, ga, 3, definition="strict")


def test_vc_empty_region_window_is_skipped():
    gts = torch.arange(5).view(5, 1, 1).expand(5, 2, 2).clone()  # gt changes every frame
    preds = torch.zeros(5, 2, 2, dtype=torch.long)
    for d in ("vspw", "all_windows"):
        assert all(math.isnan(s) for s in window_consistency(preds, gts, 2, definition=d))
        assert math.isnan(video_consistency(preds, gts, 2, definition=d))
    gts[3:] = 3  # frames 3, 4 equal: vspw starts {0, 1, 2} never reach [3..4]; all_windows does
    assert math.isnan(video_consistency(preds, gts, 2, definition="vspw"))
    assert video_consistency(preds, gts, 2, definition="all_windows") == 1.0


def test_mean_video_consistency():
    mvc = MeanVideoConsistency(windows=(8, 16), definition="all_windows")
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
    other = MeanVideoConsistency(windows=(8, 16), definition="all_windows")
    other.update(p1, gts)
    assert mvc.merge(other).compute()["mVC_8"] == pytest.approx((2.0 + 2.75 / 3) / 3)
    # vspw: windows [0..7], [1..8] only, so frame 9's flicker is never seen
    vspw = MeanVideoConsistency(windows=(8, 16), definition="vspw")
    vspw.update(p1, gts)
    assert vspw.update(p2, gts)[8] == 1.0
    assert vspw.compute()["mVC_8"] == 1.0
