"""Bad-data handling of video reading: truncated files, header counts that are merely wrong,
and which container extensions the video datasets accept."""
import os
import warnings
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from spikevideoformer.data.video_folder import SkippedVideoWarning, VideoFolder, collate_skip_none
from spikevideoformer.data.video_io import (VideoDecodeError, count_frames, looks_truncated, read_video,
                                            video_info, write_video)

H, W = 32, 48


def _frame(t):
    img = np.full((H, W, 3), 30, np.uint8)
    img[10:22, (2 * t) % (W - 12):(2 * t) % (W - 12) + 12] = (200, 40, 40)
    img += np.random.default_rng(t).integers(0, 40, img.shape, dtype=np.uint8)  # keeps packets large
    return img


def write_raw(path, fmt, codec="libx264", n=80, fps=10, options=None, pts=None):
    """Write ``n`` frames with PyAV; ``pts`` (ms) gives a variable frame rate."""
    with av.open(str(path), "w", format=fmt, options=options or {}) as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        if pts is not None:
            s.codec_context.time_base = Fraction(1, 1000)
        for t in range(n):
            f = av.VideoFrame.from_ndarray(_frame(t), format="rgb24")
            if pts is not None:
                f.pts, f.time_base = pts[t], Fraction(1, 1000)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return str(path)


def cut(src, dst, fraction):
    data = open(src, "rb").read()
    with open(dst, "wb") as fh:
        fh.write(data[: int(len(data) * fraction)])
    return str(dst)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    # header (moov) first, so a cut file still declares 80 frames
    mp4 = write_raw(d / "full.mp4", "mp4", options={"movflags": "faststart"})
    mkv = write_raw(d / "full.mkv", "matroska")
    return d, mp4, mkv


# ----------------------------------------------------------------------------- item 5: truncation
@pytest.mark.parametrize("fraction", [0.6, 0.9])
@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_truncated_file_raises_naming_file_and_counts(clips, ext, fraction):
    d, mp4, mkv = clips
    path = cut(mp4 if ext == "mp4" else mkv, d / f"cut{int(fraction * 100)}.{ext}", fraction)
    assert video_info(path)["num_frames"] == 80  # the header survived the cut
    pattern = rf"cut{int(fraction * 100)}\.{ext}.*truncated.* of 80 declared frames"
    for kwargs in (dict(num_frames=8), dict(indices=[0, 1]), {}):  # sampled, early stop, everything
        with pytest.raises(VideoDecodeError, match=pattern):
            read_video(path, **kwargs)
    with pytest.raises(VideoDecodeError, match=pattern):
        count_frames(path)


def test_intact_files_decode_as_before(clips):
    _, mp4, mkv = clips
    for path in (mp4, mkv):
        full = read_video(path)
        assert full.shape == (80, H, W, 3) and count_frames(path) == 80
        sub = read_video(path, num_frames=8)
        assert torch.equal(sub[0], full[5]) and torch.equal(sub[-1], full[75])


def test_wrong_header_count_but_complete_file_is_used(tmp_path):
    # variable frame rate: 30 frames at 25 fps then 10 at 2.5 fps; Matroska stores no count, so the
    # implied header count (duration x 25 fps = 121) overstates the 40 frames; the data reaches
    # the declared duration, so only the count is wrong and the file must still be read.
    pts = [40 * i for i in range(30)] + [1200 + 400 * i for i in range(10)]
    path = write_raw(tmp_path / "vfr.mkv", "matroska", n=40, fps=25, pts=pts)
    assert video_info(path)["num_frames"] > 100
    assert read_video(path).shape[0] == 40 and read_video(path, num_frames=8).shape[0] == 8
    assert count_frames(path) == 40
    with pytest.raises(VideoDecodeError, match="vfr_cut.mkv.*truncated"):  # the same file cut short is not
        read_video(cut(path, tmp_path / "vfr_cut.mkv", 0.6), num_frames=8)


def test_looks_truncated_decision():
    # nothing declared (MPEG-PS/TS, raw streams): never truncated
    assert not looks_truncated(0, None, 25.0, 3, 0.1)
    # tolerance max(2 frames, 5 %): 80 declared -> 4 frames may be missing
    assert not looks_truncated(80, 8.0, 10.0, 76, 7.6)
    assert looks_truncated(80, 8.0, 10.0, 75, 7.5)
    assert not looks_truncated(20, 2.0, 10.0, 18, 1.8) and looks_truncated(20, 2.0, 10.0, 17, 1.7)
    # count short but the data reaches the declared duration: header count merely wrong
    assert not looks_truncated(121, 4.84, 25.0, 40, 4.84)
    assert not looks_truncated(100, 10.0, 10.0, 80, 9.7)
    # count short and no duration to compare: truncated
    assert looks_truncated(80, None, 10.0, 31, None) and looks_truncated(80, 8.0, 10.0, 31, None)


def test_mpeg_ps_declares_nothing_and_still_decodes(tmp_path):
    path = write_raw(tmp_path / "a.mpg", "mpeg", codec="mpeg1video", n=30, fps=25)
    assert read_video(path).shape == (30, H, W, 3)


def test_video_folder_skips_warns_and_counts_truncated_clip(clips, tmp_path):
    _, mp4, _ = clips
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        write_video(tmp_path / name / "ok.mp4", torch.from_numpy(np.stack([_frame(t) for t in range(12)])), fps=10)
    cut(mp4, tmp_path / "b" / "cut.mp4", 0.9)
    ds = VideoFolder(tmp_path, split=None, num_frames=4, size=32, train=False)
    assert len(ds) == 3
    loader = DataLoader(ds, batch_size=3, shuffle=False, collate_fn=collate_skip_none)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        batches = list(loader)
    assert len(batches) == 1 and batches[0].num_skipped == 1 and batches[0].labels.tolist() == [0, 1]
    msgs = [str(w.message) for w in rec if issubclass(w.category, SkippedVideoWarning)]
    assert len(msgs) == 1 and "cut.mp4" in msgs[0] and "of 80 declared frames" in msgs[0]


# ----------------------------------------------------------------------------- item 7: extensions
def test_video_folder_lists_mpeg_ps_and_warns_about_unlisted_files(tmp_path):
    from spikevideoformer.data.video_folder import VIDEO_EXTENSIONS, UnlistedFilesWarning

    for ext in (".mpg", ".mpeg", ".m4v", ".3gp", ".ts", ".flv", ".wmv", ".ogv", ".mts", ".m2ts", ".vob",
                ".divx", ".asf", ".qt", ".MPG"):
        assert ext.lower() in VIDEO_EXTENSIONS
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_raw(tmp_path / "a" / "clip.mpg", "mpeg", codec="mpeg2video", n=12, fps=25)  # real MPEG-PS
    write_raw(tmp_path / "b" / "clip.MP4", "mp4", n=12)
    (tmp_path / "b" / "notes.txt").write_text("not a video")
    (tmp_path / "b" / "x.xyz").write_bytes(b"\0" * 10)
    (tmp_path / "b" / ".DS_Store").write_bytes(b"\0")  # OS metadata: ignored without a word
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        ds = VideoFolder(tmp_path, split=None, num_frames=4, size=32, train=False)
    assert [os.path.basename(p) for p, _ in ds.samples] == ["clip.mpg", "clip.MP4"]
    clip, label = ds[0]
    assert clip.shape == (4, 3, 32, 32) and label == 0
    msgs = [str(w.message) for w in rec if issubclass(w.category, UnlistedFilesWarning)]
    assert len(msgs) == 1 and msgs[0].startswith("2 entries under") and "b/notes.txt" in msgs[0] and "b/x.xyz" in msgs[0]
    assert ds.unlisted == ["b/notes.txt", "b/x.xyz"]
    # a nested folder and a stray file beside the class folders are reported too; a clean tree is silent
    (tmp_path / "b" / "more").mkdir()
    (tmp_path / "stray.mp4").write_bytes(b"")
    with pytest.warns(UnlistedFilesWarning, match="^4 entries.*b/more/.*stray.mp4"):
        VideoFolder(tmp_path, split=None, num_frames=4, size=32)
    for junk in ("b/notes.txt", "b/x.xyz", "stray.mp4"):
        os.remove(tmp_path / junk)
    os.rmdir(tmp_path / "b" / "more")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnlistedFilesWarning)
        assert VideoFolder(tmp_path, split=None, num_frames=4, size=32).unlisted == []
