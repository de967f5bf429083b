"""Tests for video I/O, clip transforms and the VideoFolder / VideoList datasets."""
import os
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from spikevideoformer.data import video_io
from spikevideoformer.data.transforms import (IMAGENET_MEAN, IMAGENET_STD, center_crop, normalize,
                                              random_crop, random_horizontal_flip, resize_short_side,
                                              sample_multi_clip_indices, sample_segment_indices,
                                              three_crops, to_float_clip)
from spikevideoformer.data.video_folder import (SkippedVideoWarning, UnlistedFilesWarning, VideoBatch,
                                                VideoFolder, VideoList, collate_skip_none)
from spikevideoformer.data.video_io import VideoDecodeError, read_video, video_info, write_video

CLASSES = ["jump", "run", "swim"]
COLOURS = [(220, 40, 40), (40, 200, 40), (40, 40, 220)]
T_VID, H_VID, W_VID = 20, 40, 48


def make_frames(colour, phase=0):
    """Moving coloured square on a grey background, uint8 [T, H, W, 3]."""
    x = torch.full((T_VID, H_VID, W_VID, 3), 30, dtype=torch.uint8)
    for t in range(T_VID):
        left = (2 * t + phase) % (W_VID - 12)
        x[t, 14:26, left:left + 12] = torch.tensor(colour, dtype=torch.uint8)
    return x


@pytest.fixture(scope="module")
def video_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    for split in ("train", "val"):
        for c, (name, colour) in enumerate(zip(CLASSES, COLOURS)):
            d = root / split / name
            d.mkdir(parents=True)
            for k in range(2):
                write_video(d / f"v{k}.mp4", make_frames(colour, phase=3 * k), fps=10)
    good = (root / "train" / "jump" / "v0.mp4").read_bytes()
    bad = root / "train" / "run"
    (bad / "zero.mp4").write_bytes(b"")
    (bad / "text.mp4").write_text("this is not a video\n" * 40)
    (bad / "truncated.mp4").write_bytes(good[: len(good) // 2])
    (bad / "notes.txt").write_text("ignored: not a video extension")
    return root


# ----------------------------------------------------------------------------- video_io
def test_write_read_roundtrip(tmp_path):
    frames = make_frames(COLOURS[0])
    path = write_video(tmp_path / "a.mp4", frames, fps=10)
    assert os.listdir(tmp_path) == ["a.mp4"]  # no temp file left behind
    out = read_video(path)
    assert out.shape == (T_VID, H_VID, W_VID, 3) and out.dtype == torch.uint8
    assert (out.float() - frames.float()).abs().mean() < 4.0
    info = video_info(path)
    assert info["num_frames"] == T_VID and info["width"] == W_VID and abs(info["fps"] - 10) < 1e-6
    sub = read_video(path, indices=[19, 0, 5, 5])
    assert torch.equal(sub[1], out[0]) and torch.equal(sub[0], out[19]) and torch.equal(sub[2], sub[3])
    assert read_video(path, num_frames=4).shape[0] == 4
    got = read_video(path, indices=lambda n: [0, n - 1])
    assert torch.equal(got[1], out[-1])
    # float [N, 3, H, W] input, mpeg4 codec, odd size padded to even
    f = to_float_clip(frames)[:6, :, :39, :]
    write_video(tmp_path / "b.avi", f, fps=12.5, codec="mpeg4")
    assert read_video(tmp_path / "b.avi").shape == (6, 40, 48, 3)


def test_read_video_with_unreliable_frame_count(tmp_path, monkeypatch):
    path = write_video(tmp_path / "a.mp4", make_frames(COLOURS[1]), fps=10)
    full = read_video(path)
    calls = []
    pick = lambda n: (calls.append(n), [0, n // 2, n - 1])[1]
    monkeypatch.setattr(video_io, "_estimate_frames", lambda c: 50)  # overestimate -> redo
    out = read_video(path, indices=pick)
    assert calls == [50, T_VID] and torch.equal(out[2], full[-1])
    calls.clear()
    monkeypatch.setattr(video_io, "_estimate_frames", lambda c: 0)  # unknown -> count packets
    out = read_video(path, indices=pick)
    assert calls == [T_VID] and torch.equal(out[1], full[10])


def test_read_video_errors(video_root, tmp_path):
    bad = video_root / "train" / "run"
    for name in ("zero.mp4", "text.mp4", "truncated.mp4"):
        with pytest.raises(VideoDecodeError, match=name):
            read_video(bad / name)
    assert issubclass(VideoDecodeError, ValueError)
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        read_video(tmp_path / "missing.mp4")
    good = video_root / "train" / "jump" / "v0.mp4"
    with pytest.raises(VideoDecodeError, match="frame 99"):
        read_video(good, indices=[99])
    with pytest.raises(ValueError, match="num_frames"):
        read_video(good, num_frames=0)
    with pytest.raises(ValueError, match="shape"):
        write_video(tmp_path / "x.mp4", torch.zeros(4, 8, 8, 4, dtype=torch.uint8))
    with pytest.raises(TypeError, match="dtype"):
        write_video(tmp_path / "x.mp4", torch.zeros(4, 8, 8, 3, dtype=torch.int32))
    with pytest.raises(ValueError, match="extension"):
        write_video(tmp_path / "x.gif", torch.zeros(4, 8, 8, 3, dtype=torch.uint8))


# ----------------------------------------------------------------------------- transforms
@pytest.mark.parametrize("n, t", [(100, 8), (8, 8), (5, 8), (1, 4), (37, 16)])
def test_segment_sampling(n, t):
    rng = np.random.default_rng(0)
    for train in (True, False):
        idx = sample_segment_indices(n, t, train=train, rng=rng)
        assert len(idx) == t and idx == sorted(idx) and 0 <= min(idx) and max(idx) < n
        for i, j in enumerate(idx):  # one index inside each (integer-bounded) segment
            lo, hi = i * n // t, (i + 1) * n // t
            assert lo <= j < max(hi, lo + 1)
        if n >= t:
            assert len(set(idx)) == t
    assert sample_segment_indices(80, 8, train=False) == [5, 15, 25, 35, 45, 55, 65, 75]
    draws = {tuple(sample_segment_indices(80, 8, True, rng)) for _ in range(20)}
    assert len(draws) > 1
    clips = sample_multi_clip_indices(80, 8, 2)
    assert clips[0] == [2, 12, 22, 32, 42, 52, 62, 72] and clips[1] == [7, 17, 27, 37, 47, 57, 67, 77]
    assert sample_multi_clip_indices(80, 8, 1)[0] == sample_segment_indices(80, 8, train=False)
    with pytest.raises(ValueError, match="num_total"):
        sample_segment_indices(0, 8)


def test_transforms_shapes_and_flip():
    frames = torch.randint(0, 256, (4, 30, 50, 3), dtype=torch.uint8)
    clip = to_float_clip(frames)
    assert clip.shape == (4, 3, 30, 50) and clip.dtype == torch.float32 and float(clip.max()) <= 1.0
    assert torch.allclose(clip[:, :, 3, 7] * 255, frames[:, 3, 7, :].float())
    r = resize_short_side(clip, 24)
    assert r.shape == (4, 3, 24, 40)
    assert resize_short_side(clip.transpose(2, 3), 24).shape == (4, 3, 40, 24)
    rng = np.random.default_rng(1)
    assert random_crop(r, 20, rng).shape == (4, 3, 20, 20) and center_crop(r, (10, 16)).shape == (4, 3, 10, 16)
    c = three_crops(r, 24)
    assert len(c) == 3 and all(x.shape == (4, 3, 24, 24) for x in c)
    assert torch.equal(c[0], r[..., :24]) and torch.equal(c[2], r[..., -24:])
    tall = three_crops(r.transpose(2, 3), 24)
    assert torch.equal(tall[0], r.transpose(2, 3)[..., :24, :])
    flipped = random_horizontal_flip(clip, p=1.0, rng=rng)
    assert torch.equal(flipped[..., 0], clip[..., -1]) and torch.equal(flipped.flip(-1), clip)
    assert random_horizontal_flip(clip, p=0.0) is clip
    n = normalize(clip)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    assert torch.allclose(n, (clip - mean) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
    with pytest.raises(TypeError, match="uint8"):
        to_float_clip(clip)
    with pytest.raises(ValueError, match="shape"):
        resize_short_side(clip[0], 10)
    with pytest.raises(ValueError, match="larger"):
        center_crop(clip, 31)
    with pytest.raises(ValueError, match="2 values"):
        normalize(clip[:, :2])


# ----------------------------------------------------------------------------- datasets
def test_video_folder_train(video_root):
    with pytest.warns(UnlistedFilesWarning, match="^1 entry .*run/notes.txt"):
        ds = VideoFolder(video_root, "train", num_frames=4, size=32)
    assert ds.classes == CLASSES and len(ds) == 9  # 6 good + 3 bad (.txt not used, with a warning)
    assert sorted(set(ds.targets)) == [0, 1, 2]
    torch.manual_seed(0)
    for i, (path, label) in enumerate(ds.samples):
        if "v0" not in path:
            continue
        clip, y = ds[i]
        assert clip.shape == (4, 3, 32, 32) and clip.dtype == torch.float32 and y == label
        # the square's class colour survives decoding + normalisation
        raw = clip * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        assert int(raw.amax(dim=(0, 2, 3)).argmax()) == label


def test_video_folder_eval_multi_view(video_root):
    ds = VideoFolder(video_root, "val", num_frames=4, size=32, train=False, num_clips=2, num_crops=3)
    clip, label = ds[0]
    assert clip.shape == (6, 4, 3, 32, 32) and label == 0
    again, _ = ds[0]
    assert torch.equal(clip, again)  # eval is deterministic
    assert not torch.equal(clip[0], clip[2])  # crops differ (48x40 -> long side 38)
    single = VideoFolder(video_root, "val", num_frames=4, size=32, train=False)
    assert single[0][0].shape == (4, 3, 32, 32)
    b = collate_skip_none([ds[0], ds[5]])
    assert b.clips.shape == (2, 6, 4, 3, 32, 32) and b.labels.tolist() == [0, 2]


def test_video_list(video_root, tmp_path):
    lst = tmp_path / "list.csv"
    lst.write_text("path,label\n"
                   f"{video_root}/train/jump/v0.mp4,jump\n"
                   "# a comment\n\n"
                   f"{video_root}/train/swim/v1.mp4,swim\n")
    ds = VideoList(lst, num_frames=3, size=24)
    assert ds.classes == ["jump", "swim"] and ds.targets == [0, 1]
    assert ds[1][0].shape == (3, 3, 24, 24)
    txt = tmp_path / "list.txt"
    txt.write_text("jump/v0.mp4 0\nswim/v1.mp4 2\n")
    ds2 = VideoList(txt, root=video_root / "train", classes=CLASSES, num_frames=3, size=24, train=False)
    assert ds2.targets == [0, 2] and ds2.classes == CLASSES and ds2[1][0].shape == (3, 3, 24, 24)
    assert VideoList(txt, root=video_root / "train").classes == ["0", "1", "2"]


def test_bad_files_skipped_and_counted_with_workers(video_root):
    ds = VideoFolder(video_root, "train", num_frames=4, size=32)
    loader = DataLoader(ds, batch_size=3, shuffle=False, num_workers=2, collate_fn=collate_skip_none)
    skipped, seen, labels = 0, 0, []
    for batch in loader:
        if batch is None:
            skipped += loader.batch_size
            continue
        assert isinstance(batch, VideoBatch)
        clips, y, n_bad = batch
        assert clips.shape[1:] == (4, 3, 32, 32)
        skipped += n_bad
        seen += len(y)
        labels += y.tolist()
    assert skipped == 3 and seen == 6 and skipped == len(loader.sampler) - seen
    assert sorted(labels) == [0, 0, 1, 1, 2, 2]


def test_warns_once_per_bad_file(video_root):
    ds = VideoFolder(video_root, "train", num_frames=4, size=32)
    bad = [i for i, (p, _) in enumerate(ds.samples) if os.path.basename(p) in ("zero.mp4", "text.mp4", "truncated.mp4")]
    assert len(bad) == 3
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        for _ in range(2):
            assert all(ds[i] is None for i in bad)
    msgs = [str(w.message) for w in rec if issubclass(w.category, SkippedVideoWarning)]
    assert len(msgs) == 3 and any("truncated.mp4" in m for m in msgs)
    assert collate_skip_none([None, None]) is None
    assert collate_skip_none([None, (torch.zeros(2, 3, 4, 4), 1)]).num_skipped == 1


def test_clear_errors(video_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        VideoFolder(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="test"):
        VideoFolder(video_root, split="test")
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(ValueError, match="no class folders"):
        VideoFolder(tmp_path / "empty")
    (tmp_path / "empty" / "train" / "a").mkdir()
    with pytest.raises(ValueError, match="no video files"):
        VideoFolder(tmp_path / "empty")
    with pytest.raises(ValueError, match="train=False"):
        VideoFolder(video_root, num_clips=2)
    with pytest.raises(ValueError, match="not in the given classes"):
        VideoFolder(video_root, classes=["jump"])
    lst = tmp_path / "bad.txt"
    lst.write_text("a.mp4 0\nb.mp4\n")
    with pytest.raises(ValueError, match="line 2"):
        VideoList(lst)
    lst.write_text("a.mp4 0\nb.mp4 cat\n")
    with pytest.raises(ValueError, match="line 2.*mixes"):
        VideoList(lst)
    lst.write_text("a.mp4 5\n")
    with pytest.raises(ValueError, match="line 1.*out of range"):
        VideoList(lst, classes=["x", "y"])
    with pytest.raises(FileNotFoundError, match="nolist"):
        VideoList(tmp_path / "nolist.csv")
