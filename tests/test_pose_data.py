import os
import time
import warnings

import numpy as np
import pytest
import torch

from spikevideoformer.tasks.pose import (
    PoseSequenceDataset,
    SimpleSkeleton,
    SyntheticPoseVideos,
    plot_skeleton_sequence,
    render_skeleton_frames,
    rot6d_to_matrix,
)
from spikevideoformer.tasks.pose.rotations import axis_angle_to_matrix


# ----------------------------------------------------------------------------- synthetic
def test_synthetic_shapes_and_consistency():
    ds = SyntheticPoseVideos("train", num_samples=5, num_frames=8, size=64, seed=0)
    assert len(ds) == 5
    clip, tgt = ds[0]
    assert clip.shape == (8, 3, 64, 64) and clip.dtype == torch.float32
    assert 0.0 <= float(clip.min()) and float(clip.max()) <= 1.0 and float(clip.max()) > 0.3
    assert tgt["joints"].shape == (8, 24, 3)
    assert tgt["pose_6d"].shape == (8, 24, 6)
    assert tgt["betas"].shape == (10,)
    assert tgt["transl"].shape == (8, 3)
    assert all(v.dtype == torch.float32 for v in tgt.values())
    # joints are exactly the built-in skeleton applied to the targets
    j = SimpleSkeleton()(rot6d_to_matrix(tgt["pose_6d"]), tgt["betas"], tgt["transl"])
    assert torch.allclose(j, tgt["joints"], atol=1e-5)
    assert torch.allclose(tgt["joints"][:, 0], tgt["transl"], atol=1e-6)
    # the figure is fully inside the image in most frames: some pixels lit near the centre
    assert (clip.sum(1) > 0).float().mean() > 0.02
    # motion is smooth but not static
    d = (tgt["joints"][1:] - tgt["joints"][:-1]).norm(dim=-1)
    assert float(d.max()) < 0.4 and float(d.mean()) > 1e-3


def test_synthetic_determinism_and_split_disjointness():
    a = SyntheticPoseVideos("train", 4, num_frames=6, size=32, seed=3)
    b = SyntheticPoseVideos("train", 4, num_frames=6, size=32, seed=3)
    for i in range(4):
        ca, ta = a[i]
        cb, tb = b[i]
        assert torch.equal(ca, cb)
        assert all(torch.equal(ta[k], tb[k]) for k in ta)
    assert not torch.equal(a[0][1]["joints"], a[1][1]["joints"])
    other_seed = SyntheticPoseVideos("train", 4, num_frames=6, size=32, seed=4)
    assert not torch.equal(a[0][1]["joints"], other_seed[0][1]["joints"])
    val = SyntheticPoseVideos("val", 4, num_frames=6, size=32, seed=3)
    test = SyntheticPoseVideos("test", 4, num_frames=6, size=32, seed=3)
    train_betas = {tuple(a[i][1]["betas"][:2].tolist()) for i in range(4)}
    for other in (val, test):
        for i in range(4):
            assert tuple(other[i][1]["betas"][:2].tolist()) not in train_betas
    with pytest.raises(ValueError):
        SyntheticPoseVideos("holdout", 1)
    with pytest.raises(IndexError):
        a[4]


def test_synthetic_channels_and_speed():
    for ch in (1, 2):
        clip, tgt = SyntheticPoseVideos("val", 2, num_frames=5, size=48, channels=ch)[1]
        assert clip.shape == (5, ch, 48, 48)
        assert tgt["joints"].shape == (5, 24, 3)
        assert 0.0 <= float(clip.min()) and float(clip.max()) <= 1.0
    ds = SyntheticPoseVideos("train", 50, num_frames=8, size=64)
    for i in range(10):  # warm-up (allocator / first-call overheads)
        ds[i]
    times = []
    for i in range(10, 30):
        t0 = time.perf_counter()
        ds[i]
        times.append(time.perf_counter() - t0)
    per_clip = float(np.median(times))
    # typically 3-5 ms per 8-frame 64x64 clip; generous bound for loaded shared machines
    assert per_clip < 0.05, f"median {per_clip * 1e3:.1f} ms per clip"


def test_render_depth_and_sides():
    from spikevideoformer.tasks.pose.skeleton import rest_joints

    j = rest_joints().numpy()[None]
    img = render_skeleton_frames(j, size=64, channels=3)[0]
    assert img.shape == (64, 64, 3)
    # subject faces the camera: its left arm (+x) is on the image right, drawn orange (R > B)
    right_half, left_half = img[:, 40:], img[:, :24]
    assert right_half[..., 0].sum() > right_half[..., 2].sum()
    assert left_half[..., 2].sum() > left_half[..., 0].sum()
    near = render_skeleton_frames(j + np.array([0, 0, 0.3], np.float32), 64, 1)
    far = render_skeleton_frames(j - np.array([0, 0, 0.3], np.float32), 64, 1)
    assert near.sum() > far.sum()  # closer = brighter


def test_plot_skeleton_sequence(tmp_path):
    ds = SyntheticPoseVideos("test", 1, num_frames=6, size=32)
    true = ds[0][1]["joints"]
    pred = true + 0.03 * torch.randn_like(true)
    out = tmp_path / "sub" / "skel.png"
    assert plot_skeleton_sequence(pred, true, str(out), max_frames=4) == str(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["skel.png"]  # no temp files left
    plot_skeleton_sequence(None, true.numpy(), str(out))


# ----------------------------------------------------------------------------- on-disk dataset
def _annotations(n, seed, with_joints=True, with_pose=True):
    g = torch.Generator().manual_seed(seed)
    aa = 0.3 * torch.randn(n, 24, 3, generator=g)
    transl = 0.1 * torch.randn(n, 3, generator=g)
    betas = torch.zeros(10)
    joints = SimpleSkeleton()(axis_angle_to_matrix(aa), betas, transl)
    d = {"betas": betas.numpy(), "transl": transl.numpy()}
    if with_pose:
        d["pose"] = aa.reshape(n, 72).numpy()
    if with_joints:
        d["joints3d"] = joints.numpy()
    return d, joints


def _write_png_sequence(seq_dir, n, h=24, w=32):
    from PIL import Image

    os.makedirs(os.path.join(seq_dir, "frames"))
    for i in range(n):
        a = np.zeros((h, w), np.uint8)
        a[:, (i * 3) % w] = 255  # grey-scale frame
        Image.fromarray(a, mode="L").save(os.path.join(seq_dir, "frames", f"{i:06d}.png"))


def _write_mp4_sequence(seq_dir, n, h=32, w=48):
    import av

    os.makedirs(seq_dir)
    path = os.path.join(seq_dir, "video.mp4")
    with av.open(path, "w") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i in range(n):
            a = np.zeros((h, w, 3), np.uint8)
            a[..., 0] = 40 + 5 * i
            a[h // 4 : h // 2, w // 4 : w // 2] = 230
            for pkt in s.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


@pytest.fixture()
def pose_root(tmp_path):
    root = tmp_path / "data"
    split = root / "test"
    # sequence 1: 10 png frames, joints + pose
    ann, _ = _annotations(10, 0)
    _write_png_sequence(str(split / "seq_png"), 10)
    np.savez(split / "seq_png" / "annotations.npz", **ann)
    # sequence 2: 7-frame mp4, SMPL pose only (joints from a body model if given)
    ann, _ = _annotations(7, 1, with_joints=False)
    _write_mp4_sequence(str(split / "seq_mp4"), 7)
    np.savez(split / "seq_mp4" / "annotations.npz", **ann)
    # broken 1: corrupt annotations
    _write_png_sequence(str(split / "seq_broken_ann"), 6)
    (split / "seq_broken_ann" / "annotations.npz").write_bytes(b"this is not a zip file")
    # broken 2: annotations but no frames
    os.makedirs(split / "seq_no_frames")
    ann, _ = _annotations(6, 2)
    np.savez(split / "seq_no_frames" / "annotations.npz", **ann)
    return root


def test_pose_sequence_dataset(pose_root):
    with pytest.warns(RuntimeWarning) as rec:
        ds = PoseSequenceDataset(str(pose_root), "test", num_frames=3, size=16, body_model=SimpleSkeleton())
    msgs = [str(w.message) for w in rec]
    assert any("seq_broken_ann" in m and "annotations.npz" in m for m in msgs)
    assert any("seq_no_frames" in m and "frames" in m for m in msgs)
    assert len(ds.skipped) == 2
    skipped = sorted(os.path.basename(d) for d, _ in ds.skipped)
    assert skipped == ["seq_broken_ann", "seq_no_frames"]
    # windows: png 10 frames -> 3 windows, mp4 7 frames -> 2 windows (stride = T)
    assert len(ds) == 3 + 2
    assert ds.train is False and ds.flip_prob == 0.0
    names = [ds.sequences[k]["name"] for k, _ in ds.windows]
    assert names.count("seq_png") == 3 and names.count("seq_mp4") == 2
    for i in range(len(ds)):
        clip, tgt = ds[i]
        assert clip.shape == (3, 3, 16, 16) and clip.dtype == torch.float32
        assert 0.0 <= float(clip.min()) and float(clip.max()) <= 1.0
        assert tgt["joints"].shape == (3, 24, 3)
        assert tgt["pose_6d"].shape == (3, 24, 6)
        assert tgt["betas"].shape == (10,) and tgt["transl"].shape == (3, 3)
        assert bool(tgt["has_joints"]) and bool(tgt["has_smpl"])
    # png window: grey frames replicated to 3 channels, joints match the annotation
    k = names.index("seq_png")
    clip, tgt = ds[k + 1]
    assert torch.equal(clip[:, 0], clip[:, 1]) and torch.equal(clip[:, 1], clip[:, 2])
    assert int(tgt["start"]) == 3
    _, joints = _annotations(10, 0)
    assert torch.allclose(tgt["joints"], joints[3:6], atol=1e-6)
    # mp4 window: joints computed from the SMPL pose with the given body model
    k = names.index("seq_mp4")
    clip, tgt = ds[k + 1]
    _, joints = _annotations(7, 1)
    assert torch.allclose(tgt["joints"], joints[3:6], atol=1e-5)
    assert float(clip[:, 0].mean()) > float(clip[:, 2].mean())  # red-ish background survives decoding
    # data loader collation works
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch[0].shape == (2, 3, 3, 16, 16) and batch[1]["joints"].shape == (2, 3, 24, 3)


def test_pose_sequence_dataset_stride_train_and_errors(pose_root, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = PoseSequenceDataset(str(pose_root), "test", num_frames=4, stride=2, size=20, train=True,
                                 resize_mode="crop")
        # png: starts 0,2,4,6 -> 4; mp4 (7 frames): 0,2 -> 2
        assert len(ds) == 6
        assert ds.flip_prob == 0.5
        clip, tgt = ds[0]
        assert clip.shape == (4, 3, 20, 20)
        # mp4 sequence has no joints3d and no body model -> flagged
        k = [ds.sequences[i]["name"] for i, _ in ds.windows].index("seq_mp4")
        assert not bool(ds[k][1]["has_joints"])
        # nothing usable (all sequences shorter than T) -> clear ValueError
        with pytest.raises(ValueError, match="no usable"):
            PoseSequenceDataset(str(pose_root), "test", num_frames=50)
    with pytest.raises(FileNotFoundError):
        PoseSequenceDataset(str(tmp_path / "missing"), "train")


def test_flip_augmentation_is_consistent(pose_root):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = PoseSequenceDataset(str(pose_root), "test", num_frames=3, size=16, train=True, flip_prob=1.0,
                                 body_model=SimpleSkeleton())
        ref = PoseSequenceDataset(str(pose_root), "test", num_frames=3, size=16, train=False,
                                  body_model=SimpleSkeleton())
    clip, tgt = ds[0]
    clip0, tgt0 = ref[0]
    assert torch.allclose(clip, clip0.flip(-1))
    j = SimpleSkeleton()(rot6d_to_matrix(tgt["pose_6d"]), tgt["betas"], tgt["transl"])
    assert torch.allclose(j, tgt["joints"], atol=1e-5)
    assert torch.allclose(tgt["transl"][:, 0], -tgt0["transl"][:, 0])


def test_truncated_video_sequence_is_skipped(pose_root):
    import av

    # Matroska keeps its header (duration) at the front, so a cut file still declares 30 frames;
    # the old per-file counter took the 18 surviving packets as the sequence length.
    seq = pose_root / "test" / "seq_cut"
    os.makedirs(seq)
    full = str(seq / "full.mkv")
    with av.open(full, "w", format="matroska") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 48, 32, "yuv420p"
        rng = np.random.default_rng(0)
        for _ in range(30):
            a = rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)
            for pkt in s.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    data = open(full, "rb").read()
    (seq / "video.mkv").write_bytes(data[: len(data) * 6 // 10])
    os.remove(full)
    ann, _ = _annotations(30, 3)
    np.savez(seq / "annotations.npz", **ann)
    with pytest.warns(RuntimeWarning) as rec:
        ds = PoseSequenceDataset(str(pose_root), "test", num_frames=3, size=16)
    assert any("seq_cut" in str(w.message) and "truncated file" in str(w.message) for w in rec)
    reasons = {os.path.basename(d): r for d, r in ds.skipped}
    assert len(ds.skipped) == 3 and "video.mkv" in reasons["seq_cut"] and "of 30 declared" in reasons["seq_cut"]
    assert "seq_cut" not in [ds.sequences[k]["name"] for k, _ in ds.windows]
