"""Tests for spikevideoformer.data.events (representations, readers, simulator, DVS Gesture)."""
from __future__ import annotations

import os
import struct
import sys

import numpy as np
import pytest
import torch

from spikevideoformer.data.events import (
    EVENT_DTYPE,
    GESTURE_CLASSES,
    DVSGesture,
    convert_dvs_gesture,
    events_to_frames,
    events_to_voxel_grid,
    frames_from_video_events,
    make_events,
    read_aedat31,
    read_events,
    validate_events,
    video_to_events,
    write_events,
)
from spikevideoformer.models.finetune import adapt_stem_weight


def ev(x, y, t, p):
    return {"x": np.asarray(x), "y": np.asarray(y), "t": np.asarray(t), "p": np.asarray(p)}


def random_events(n=5000, H=16, W=20, seed=0, tmax=10**6):
    rng = np.random.default_rng(seed)
    return make_events(
        rng.integers(0, W, n), rng.integers(0, H, n), np.sort(rng.integers(0, tmax, n)), rng.integers(0, 2, n)
    )


# ------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------
def test_validate_normalises_polarity_and_dtype():
    out = validate_events(ev([0, 1, 2], [0, 0, 1], [0, 5, 5], [-1, 1, -1]), sensor_size=(2, 3))
    assert out.dtype == EVENT_DTYPE
    assert out["p"].tolist() == [0, 1, 0]
    s = np.zeros(2, dtype=[("x", "u2"), ("y", "u2"), ("t", "f8"), ("p", "?")])
    s["t"] = [1.5, 2.5]
    s["p"] = [True, False]
    out = validate_events(s)
    assert out["t"].dtype == np.float64 and out["p"].tolist() == [1, 0]


@pytest.mark.parametrize(
    "events, kwargs, match",
    [
        ({"x": [0], "y": [0]}, {}, r"missing field\(s\) \['t', 'p'\]"),
        (np.zeros(3, dtype=[("x", "i4"), ("y", "i4"), ("t", "i8")]), {}, r"missing field\(s\) \['p'\]"),
        (ev([0, 0], [0, 0], [5, -1], [0, 1]), {}, r"negative timestamp t\[1\] = -1"),
        (ev([0, 0, 0], [0, 0, 0], [1, 3, 2], [0, 1, 1]), {}, r"not sorted: t\[2\] = 2 < t\[1\] = 3"),
        (ev([0, 128], [0, 0], [1, 2], [0, 1]), {"sensor_size": (128, 128)}, r"x\[1\] = 128 is outside the sensor: width W = 128"),
        (ev([0, 0], [0, 7], [1, 2], [0, 1]), {"sensor_size": (7, 9)}, r"y\[1\] = 7 is outside the sensor: height H = 7"),
        (ev([-1, 0], [0, 0], [1, 2], [0, 1]), {}, r"x\[0\] = -1 is negative"),
        (ev([0, 0, 0], [0, 0, 0], [1, 2, 3], [-1, 0, 1]), {}, r"polarity values must be \{0, 1\} or \{-1, \+1\}; found \[-1, 0, 1\]"),
        (ev([0], [0], [1], [2]), {}, r"polarity values"),
        (ev([], [], [], []), {"allow_empty": False}, r"empty"),
        (ev([0, 0], [0], [1, 2], [0, 1]), {}, r"different lengths"),
        (ev(["a"], [0], [1], [0]), {}, r"field 'x' must be numeric"),
        (ev([0.5], [0], [1], [0]), {}, r"field 'x' must hold integers"),
        (np.zeros((2, 2)), {}, r"structured array or a mapping"),
    ],
)
def test_validate_errors(events, kwargs, match):
    with pytest.raises(ValueError, match=match):
        validate_events(events, **kwargs)


def test_empty_stream_allowed_by_default():
    assert validate_events(ev([], [], [], [])).size == 0
    f = events_to_frames(ev([], [], [], []), (4, 4), 3)
    assert f.shape == (3, 2, 4, 4) and f.sum() == 0


# ------------------------------------------------------------------------------------------
# frames
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["time", "count"])
@pytest.mark.parametrize("T", [1, 3, 7, 16])
def test_frames_conserve_events(mode, T):
    e = random_events()
    f = events_to_frames(e, (16, 20), T, mode=mode)
    assert f.shape == (T, 2, 16, 20) and f.dtype == np.float32
    assert f.sum() == e.size
    # ON in channel 0, OFF in channel 1
    assert f[:, 0].sum() == (e["p"] == 1).sum()
    assert f[:, 1].sum() == (e["p"] == 0).sum()


def test_time_mode_hand_case_with_edges():
    # span [0, 100], T = 4 -> edges 0, 25, 50, 75, 100
    t = [0, 10, 25, 49, 50, 74, 75, 99, 100]
    x = [0, 1, 2, 3, 0, 1, 2, 3, 3]
    p = [1, 0, 1, 1, 0, 0, 1, 1, 0]
    f = events_to_frames(ev(x, [0] * 9, t, p), (1, 4), 4, mode="time")
    # bin 0: t=0 (x0 ON), t=10 (x1 OFF); bin 1: t=25 (x2 ON), t=49 (x3 ON)
    # bin 2: t=50 (x0 OFF), t=74 (x1 OFF); bin 3: t=75 (x2 ON), 99 (x3 ON), 100 (x3 OFF, last event)
    exp = np.zeros((4, 2, 1, 4), np.float32)
    exp[0, 0, 0, 0] = 1; exp[0, 1, 0, 1] = 1
    exp[1, 0, 0, 2] = 1; exp[1, 0, 0, 3] = 1
    exp[2, 1, 0, 0] = 1; exp[2, 1, 0, 1] = 1
    exp[3, 0, 0, 2] = 1; exp[3, 0, 0, 3] = 1; exp[3, 1, 0, 3] = 1
    np.testing.assert_array_equal(f, exp)
    # float timestamps give the same bins
    f2 = events_to_frames(ev(x, [0] * 9, np.asarray(t, float), p), (1, 4), 4, mode="time")
    np.testing.assert_array_equal(f2, exp)


def test_time_mode_uneven_span_and_offset():
    # span [1000, 1010] with T=3 -> edges 1000, 1003.33, 1006.67, 1010
    t = np.arange(1000, 1011)
    f = events_to_frames(ev(np.zeros(11, int), np.zeros(11, int), t, np.ones(11, int)), (1, 1), 3)
    assert f[:, 0, 0, 0].tolist() == [4, 3, 4]  # {1000..1003}, {1004..1006}, {1007..1010}


def test_count_mode_hand_case():
    t = [0, 1, 2, 3, 1000, 1001, 5000]  # N=7, T=3 -> bins of event indices [0,3) [3,5) [5,7)
    x = [0, 1, 2, 0, 1, 2, 0]
    f = events_to_frames(ev(x, [0] * 7, t, [1] * 7), (1, 3), 3, mode="count")
    assert f[:, 0, 0].tolist() == [[1, 1, 1], [1, 1, 0], [1, 0, 1]]
    assert f[:, 1].sum() == 0


def test_zero_duration_and_clip_normalize_overlap():
    f = events_to_frames(ev([0, 0], [0, 0], [5, 5], [1, 1]), (1, 1), 3)
    assert f[:, 0, 0, 0].tolist() == [0, 0, 2]
    e = ev([0, 0, 0, 1], [0, 0, 0, 0], [0, 1, 2, 3], [1, 1, 1, 0])
    assert events_to_frames(e, (1, 2), 1, clip_value=2)[0, 0, 0, 0] == 2
    b = events_to_frames(e, (1, 2), 1, normalize="binary")
    assert set(np.unique(b).tolist()) == {0.0, 1.0}
    m = events_to_frames(e, (1, 2), 1, normalize="max")
    assert m.max() == 1.0 and m[0, 1, 0, 1] == pytest.approx(1 / 3)
    # overlap 0.5 with T=3 over [0, 100]: windows [0,50) [25,75) [50,100]
    t = np.arange(0, 101)
    fo = events_to_frames(ev(np.zeros(101, int), np.zeros(101, int), t, np.ones(101, int)), (1, 1), 3, overlap=0.5)
    assert fo[:, 0, 0, 0].tolist() == [50, 50, 51]
    with pytest.raises(ValueError, match="overlap"):
        events_to_frames(e, (1, 2), 2, overlap=1.0)
    with pytest.raises(ValueError, match="mode"):
        events_to_frames(e, (1, 2), 2, mode="bogus")


def test_time_range_filter():
    t = [0, 10, 20, 30]
    f = events_to_frames(ev([0] * 4, [0] * 4, t, [1] * 4), (1, 1), 2, time_range=(10, 30))
    assert f[:, 0, 0, 0].tolist() == [1, 2]


def test_voxel_grid_hand_case():
    # t* = 2 * t / 100 -> 0, 0.5, 1, 2 ; polarities +1, -1, +1, +1
    e = ev([0, 0, 1, 1], [0, 0, 0, 0], [0, 25, 50, 100], [1, 0, 1, 1])
    v = events_to_voxel_grid(e, (1, 2), 3)
    assert v.shape == (3, 1, 2) and v.dtype == np.float32
    np.testing.assert_allclose(v[:, 0, 0], [1 - 0.5, -0.5, 0.0])
    np.testing.assert_allclose(v[:, 0, 1], [0.0, 1.0, 1.0])
    r = random_events()
    vg = events_to_voxel_grid(r, (16, 20), 5)
    pol = np.zeros((16, 20))
    np.add.at(pol, (r["y"], r["x"]), 2.0 * r["p"] - 1)
    np.testing.assert_allclose(vg.sum(0), pol, atol=1e-4)


def test_adapt_stem_weight_preserves_uniform_response():
    torch.manual_seed(0)
    w = torch.randn(8, 3, 3, 3)
    for c in (1, 2, 5):
        w2 = adapt_stem_weight(w, c)
        assert w2.shape == (8, c, 3, 3)
        x_old = torch.full((1, 3, 6, 6), 0.7)
        x_new = torch.full((1, c, 6, 6), 0.7)
        torch.testing.assert_close(
            torch.nn.functional.conv2d(x_new, w2), torch.nn.functional.conv2d(x_old, w), rtol=1e-5, atol=1e-5
        )
    wn = adapt_stem_weight(w.numpy(), 2)
    np.testing.assert_allclose(wn, adapt_stem_weight(w, 2).numpy(), rtol=1e-6)


def test_events_to_frames_speed_1e6():
    rng = np.random.default_rng(1)
    n = 10**6
    e = {"x": rng.integers(0, 128, n), "y": rng.integers(0, 128, n), "t": np.sort(rng.integers(0, 10**7, n)), "p": rng.integers(0, 2, n)}
    import time

    t0 = time.perf_counter()
    f = events_to_frames(e, (128, 128), 16)
    assert time.perf_counter() - t0 < 2.0
    assert f.sum() == n


# ------------------------------------------------------------------------------------------
# readers
# ------------------------------------------------------------------------------------------
def _assert_same(a, b):
    for k in ("x", "y", "t", "p"):
        np.testing.assert_array_equal(a[k], b[k])


@pytest.mark.parametrize("ext", [".npy", ".npz"])
def test_round_trip_numpy(tmp_path, ext):
    e = random_events(300)
    path = write_events(tmp_path / f"ev{ext}", e, sensor_size=(16, 20))
    got, sensor = read_events(path, return_sensor_size=True)
    _assert_same(got, e)
    assert got.dtype == EVENT_DTYPE
    assert sensor == ((16, 20) if ext == ".npz" else None)
    assert sorted(os.listdir(tmp_path)) == [f"ev{ext}"]  # no temp files left behind


def test_round_trip_h5(tmp_path):
    h5py = pytest.importorskip("h5py")
    e = random_events(300)
    got, sensor = read_events(write_events(tmp_path / "ev.h5", e, sensor_size=(16, 20)), return_sensor_size=True)
    _assert_same(got, e)
    assert sensor == (16, 20)
    with h5py.File(tmp_path / "top.hdf5", "w") as f:  # top-level layout, alias names
        f["x"], f["y"], f["ts"], f["polarity"] = e["x"], e["y"], e["t"], e["p"] * 2 - 1
    _assert_same(read_events(tmp_path / "top.hdf5"), e)
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["events/x"], f["events/y"], f["events/t"] = e["x"], e["y"], e["t"]
    with pytest.raises(ValueError, match=r"bad\.h5: missing event field\(s\) \['p'\]"):
        read_events(tmp_path / "bad.h5")
    (tmp_path / "garbage.h5").write_bytes(b"\x00garbage" * 50)
    with pytest.raises(ValueError, match=r"garbage\.h5"):
        read_events(tmp_path / "garbage.h5")


def test_h5_missing_dependency_message(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match="pip install h5py"):
        write_events(tmp_path / "ev.h5", random_events(5))
    assert not list(tmp_path.iterdir())


def test_reader_errors(tmp_path):
    e = random_events(10)
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        read_events(tmp_path / "nope.npz")
    np.savez(tmp_path / "missing.npz", x=e["x"], y=e["y"], t=e["t"])
    with pytest.raises(ValueError, match=r"missing\.npz: missing event field\(s\) \['p'\]"):
        read_events(tmp_path / "missing.npz")
    np.savez(tmp_path / "dtype.npz", x=e["x"], y=e["y"], t=np.array(["a"] * 10), p=e["p"])
    with pytest.raises(ValueError, match=r"dtype\.npz: field 't' has non-numeric dtype"):
        read_events(tmp_path / "dtype.npz")
    np.save(tmp_path / "plain.npy", np.zeros((10, 4)))
    with pytest.raises(ValueError, match=r"plain\.npy: expected a structured array"):
        read_events(tmp_path / "plain.npy")
    for name in ("garbage.npy", "garbage.npz"):
        (tmp_path / name).write_bytes(os.urandom(64) + b"not an array")
        with pytest.raises(ValueError, match=name.replace(".", r"\.")):
            read_events(tmp_path / name)
    np.savez(tmp_path / "unsorted.npz", x=[0, 0], y=[0, 0], t=[5, 1], p=[0, 1])
    with pytest.raises(ValueError, match=r"unsorted\.npz: timestamps are not sorted"):
        read_events(tmp_path / "unsorted.npz")
    np.savez(tmp_path / "oob.npz", x=[0, 200], y=[0, 0], t=[1, 2], p=[0, 1], sensor_size=[128, 128])
    with pytest.raises(ValueError, match=r"oob\.npz: coordinate x\[1\] = 200"):
        read_events(tmp_path / "oob.npz")
    (tmp_path / "ev.txt").write_text("1 2 3 4")
    with pytest.raises(ValueError, match="unsupported"):
        read_events(tmp_path / "ev.txt")
    # a failed write leaves nothing behind
    with pytest.raises(ValueError):
        write_events(tmp_path / "w" / "bad.npz", ev([0], [0], [1], [5]))
    assert not (tmp_path / "w").exists() or not list((tmp_path / "w").iterdir())


# ------------------------------------------------------------------------------------------
# simulator
# ------------------------------------------------------------------------------------------
def moving_bar(T=10, H=6, W=24, width=4, c0=2):
    v = np.zeros((T, H, W), np.float32)
    for k in range(T):
        v[k, :, c0 + k: c0 + k + width] = 1.0
    return v


def test_simulator_moving_edge():
    T, H, W, width, c0 = 10, 6, 24, 4, 2
    v = moving_bar(T, H, W, width, c0)
    ts = np.round(np.arange(T) * 1e6 / 30).astype(np.int64)
    e = video_to_events(v, contrast_threshold=0.2)
    assert e.dtype == EVENT_DTYPE and e.size > 0
    assert np.all(np.diff(e["t"]) >= 0)
    k = np.searchsorted(ts, e["t"], side="right")  # event belongs to change frame k-1 -> k
    assert k.min() >= 1 and k.max() <= T - 1
    assert np.all(e["t"] >= ts[k - 1]) and np.all(e["t"] < ts[k])
    on, off = e["p"] == 1, e["p"] == 0
    # leading edge (ON) at column c0 + k - 1 + width, trailing edge (OFF) at column c0 + k - 1
    np.testing.assert_array_equal(e["x"][on], (c0 + k - 1 + width)[on])
    np.testing.assert_array_equal(e["x"][off], (c0 + k - 1)[off])
    # dark -> bright: floor((log(1+eps) - log(eps)) / C) ON events per pixel
    n_expected = int(np.floor((np.log(1 + 1e-3) - np.log(1e-3)) / 0.2))
    for kk in range(1, T):
        sel = on & (k == kk)
        assert sel.sum() == H * n_expected
        assert (off & (k == kk)).sum() >= H * (n_expected - 1)
    touched = set(range(c0, c0 + T - 1 + width))
    static = [c for c in range(W) if c not in touched]
    assert static and not np.isin(e["x"], static).any()
    # ON timestamps increase within an interval (interpolated crossings)
    sel = on & (k == 3) & (e["y"] == 0)
    assert np.unique(e["t"][sel]).size > 1


def test_simulator_static_video_no_events_and_formats():
    v = np.full((8, 5, 7), 0.4, np.float32)
    assert video_to_events(v).size == 0
    rgb = (np.random.default_rng(0).random((1, 3, 5, 7)) * 255).astype(np.uint8).repeat(6, axis=0)
    assert video_to_events(rgb).size == 0
    assert video_to_events(torch.from_numpy(moving_bar())).size == video_to_events(moving_bar()).size
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        video_to_events(v * 255)


def test_simulator_refractory_reduces_count():
    v = moving_bar()
    n0 = video_to_events(v).size
    n1 = video_to_events(v, refractory_us=5000).size
    n2 = video_to_events(v, refractory_us=10**7).size
    assert n2 < n1 < n0
    e2 = video_to_events(v, refractory_us=10**7)
    pix = e2["y"] * 100 + e2["x"]
    assert np.unique(pix).size == pix.size  # at most one event per pixel


def test_simulator_noise_rate():
    T, H, W, rate = 11, 32, 32, 10.0
    v = np.full((T, H, W), 0.5, np.float32)
    e = video_to_events(v, noise_rate_hz=rate, seed=3)
    duration = (T - 1) / 30.0
    expected = rate * H * W * duration
    assert abs(e.size - expected) < 5 * np.sqrt(expected)
    assert abs((e["p"] == 1).mean() - 0.5) < 0.05
    assert np.all(np.diff(e["t"]) >= 0)
    assert video_to_events(v, noise_rate_hz=rate, seed=3).size == e.size  # seeded


def test_simulator_speed_16x64x64():
    import time

    rng = np.random.default_rng(0)
    v = rng.random((16, 64, 64)).astype(np.float32)
    t0 = time.perf_counter()
    e = video_to_events(v)
    assert time.perf_counter() - t0 < 5.0
    assert e.size > 0


def test_frames_from_video_events():
    T, H, W, width, c0 = 10, 6, 24, 4, 2
    v = moving_bar(T, H, W, width, c0)
    f = frames_from_video_events(v)
    assert f.shape == (T - 1, 2, H, W) and f.dtype == np.float32
    assert f.sum() == video_to_events(v).size
    for i in range(T - 1):  # bin i = change from video frame i to i+1
        on_cols = np.flatnonzero(f[i, 0].sum(0))
        off_cols = np.flatnonzero(f[i, 1].sum(0))
        assert on_cols.tolist() == [c0 + i + width]
        assert off_cols.tolist() == [c0 + i]
    f3 = frames_from_video_events(v, num_frames=3, normalize="binary")
    assert f3.shape == (3, 2, H, W) and set(np.unique(f3).tolist()) <= {0.0, 1.0}
    assert np.flatnonzero(f3[0, 0].sum(0)).tolist() == [c0 + width, c0 + width + 1, c0 + width + 2]


# ------------------------------------------------------------------------------------------
# DVS Gesture
# ------------------------------------------------------------------------------------------
def write_aedat31(path, events, special=True, overflow=0):
    """Tiny AEDAT 3.1 writer following the documented layout (test helper)."""
    x, y, t, p = (np.asarray(events[k]) for k in ("x", "y", "t", "p"))
    data = (x.astype(np.uint32) << 17) | (y.astype(np.uint32) << 2) | (p.astype(np.uint32) << 1) | 1
    body = b""
    if special:  # a non-polarity packet (type 0) that must be skipped
        body += struct.pack("<hhiiiiii", 0, 1, 8, 4, 0, 2, 2, 2) + b"\xff" * 16
    half = len(x) // 2
    for sl in (slice(0, half), slice(half, None)):
        n = len(x[sl])
        body += struct.pack("<hhiiiiii", 1, 1, 8, 4, overflow, n, n, n)
        pk = np.empty(n, dtype=[("d", "<u4"), ("t", "<u4")])
        pk["d"], pk["t"] = data[sl], t[sl]
        body += pk.tobytes()
    header = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n"
    path.write_bytes(header + body)


def make_gesture_root(root):
    rng = np.random.default_rng(0)
    trials = {"user01_fluorescent": [(1, 1000, 2000), (3, 2000, 4000)], "user02_led": [(11, 500, 900)]}
    truth = {}
    for name, segs in trials.items():
        n = 400
        t = np.sort(rng.integers(0, 5000, n))
        e = {"x": rng.integers(0, 128, n), "y": rng.integers(0, 128, n), "t": t, "p": rng.integers(0, 2, n)}
        write_aedat31(root / f"{name}.aedat", e)
        lines = ["class,startTime_usec,endTime_usec"] + [f"{c},{a},{b}" for c, a, b in segs]
        (root / f"{name}_labels.csv").write_text("\n".join(lines) + "\n")
        truth[name] = (e, segs)
    (root / "trials_to_train.txt").write_text("user01_fluorescent.aedat\n")
    (root / "trials_to_test.txt").write_text("user02_led.aedat\n\n")
    return truth


def test_read_aedat31(tmp_path):
    e = {"x": np.array([0, 127, 5]), "y": np.array([127, 0, 9]), "t": np.array([10, 20, 30]), "p": np.array([1, 0, 1])}
    write_aedat31(tmp_path / "a.aedat", e, overflow=1)
    got = read_aedat31(tmp_path / "a.aedat")
    assert got["x"].tolist() == [0, 127, 5] and got["y"].tolist() == [127, 0, 9]
    assert got["p"].tolist() == [1, 0, 1]
    assert got["t"].tolist() == [10 + 2**31, 20 + 2**31, 30 + 2**31]
    _assert_same(read_events(tmp_path / "a.aedat"), got)
    (tmp_path / "b.aedat").write_bytes(b"#!AER-DAT2.0\r\n" + b"\x00" * 16)
    with pytest.raises(ValueError, match="not an AEDAT 3"):
        read_aedat31(tmp_path / "b.aedat")
    (tmp_path / "c.aedat").write_bytes((tmp_path / "a.aedat").read_bytes()[:-5])
    with pytest.raises(ValueError, match="truncated"):
        read_aedat31(tmp_path / "c.aedat")


def test_dvs_gesture_dataset_and_conversion(tmp_path):
    raw = tmp_path / "DvsGesture"
    raw.mkdir()
    truth = make_gesture_root(raw)
    assert len(GESTURE_CLASSES) == 11
    train = DVSGesture(raw, "train", num_frames=16)
    test = DVSGesture(raw, "test", num_frames=16, size=32)
    assert len(train) == 2 and len(test) == 1
    assert train.targets == [0, 2] and test.targets == [10]
    e, segs = truth["user01_fluorescent"]
    for i, (_, a, b) in enumerate(segs):
        frames, label = train[i]
        assert isinstance(frames, torch.Tensor) and frames.shape == (16, 2, 128, 128)
        assert frames.dtype == torch.float32
        n = int(((e["t"] >= a) & (e["t"] < b)).sum())
        assert frames.sum().item() == n and n > 0
        assert len(train.get_events(i)) == n
    frames, label = test[0]
    e2, segs2 = truth["user02_led"]
    assert frames.shape == (16, 2, 32, 32) and label == 10
    assert frames.sum().item() == int(((e2["t"] >= 500) & (e2["t"] < 900)).sum())

    out = tmp_path / "converted"
    counts = convert_dvs_gesture(raw, out, progress=False)
    assert counts == {"train": 2, "test": 1}
    assert sorted(p.name for p in (out / "train").iterdir()) == ["0", "2"]
    conv = DVSGesture(out, "train", num_frames=16)
    assert conv.layout == "converted" and conv.targets == train.targets
    for i in range(len(train)):
        torch.testing.assert_close(conv[i][0], train[i][0])
    torch.testing.assert_close(DVSGesture(out, "test", size=32)[0][0], test[0][0])
    with pytest.raises(FileNotFoundError, match="neither"):
        DVSGesture(tmp_path, "train")
    with pytest.raises(ValueError, match="divide 128"):
        DVSGesture(raw, "train", size=100)


def test_aedat_time_span_and_truncation_errors(tmp_path):
    from spikevideoformer.data.events.readers import aedat31_time_span

    e = {"x": np.arange(6), "y": np.arange(6), "t": np.array([5, 9, 40, 41, 70, 99]), "p": np.ones(6, int)}
    write_aedat31(tmp_path / "a.aedat", e)
    assert aedat31_time_span(tmp_path / "a.aedat") == (5, 99)
    data = (tmp_path / "a.aedat").read_bytes()
    header_end = data.index(b"#!END-HEADER") + len(b"#!END-HEADER\r\n")
    (tmp_path / "hdr.aedat").write_bytes(data[:header_end])  # cut at a packet boundary: no events at all
    assert aedat31_time_span(tmp_path / "hdr.aedat") is None
    for cut, match in ((len(data) - 3, "truncated AEDAT packet at byte"), (header_end + 10, "truncated AEDAT packet header"),
                       (header_end - 4, "END-HEADER|unterminated"), (0, "empty file")):
        (tmp_path / "t.aedat").write_bytes(data[:cut])
        for reader in (read_aedat31, aedat31_time_span):
            with pytest.raises(ValueError, match=match) as info:
                reader(tmp_path / "t.aedat")
            assert "t.aedat" in str(info.value)


def test_dvs_gesture_truncated_recording_is_skipped_and_counted(tmp_path):
    from torch.utils.data import DataLoader

    from spikevideoformer.data.events.dvs_gesture import SkippedRecordingWarning
    from spikevideoformer.data.video_folder import collate_skip_none

    raw = tmp_path / "DvsGesture"
    raw.mkdir()
    make_gesture_root(raw)
    (raw / "trials_to_train.txt").write_text("user01_fluorescent.aedat\nuser02_led.aedat\n")
    bad = raw / "user01_fluorescent.aedat"
    bad.write_bytes(bad.read_bytes()[:-100])  # cut inside the last packet
    ds = DVSGesture(raw, "train", num_frames=4, size=32)
    assert ds.targets == [0, 2, 10]  # kept: they are skipped (and counted) when loaded
    with pytest.raises(ValueError, match="user01_fluorescent.aedat.*truncated"):
        ds.get_frames(0)  # a direct read raises one clear error
    with pytest.warns(SkippedRecordingWarning, match="user01_fluorescent.aedat.*truncated") as rec:
        batches = list(DataLoader(ds, batch_size=3, collate_fn=collate_skip_none))
    assert len([w for w in rec if issubclass(w.category, SkippedRecordingWarning)]) == 1  # once per file
    assert len(batches) == 1 and batches[0].num_skipped == 2 and batches[0].labels.tolist() == [10]
    assert batches[0].clips.shape == (1, 4, 2, 32, 32)


def test_dvs_gesture_rejects_impossible_segments(tmp_path):
    from spikevideoformer.data.events.dvs_gesture import BadSegmentWarning

    raw = tmp_path / "DvsGesture"
    raw.mkdir()
    truth = make_gesture_root(raw)
    t = truth["user01_fluorescent"][0]["t"]
    assert 1000 < t[-1] < 9000
    (raw / "user01_fluorescent_labels.csv").write_text(
        "class,startTime_usec,endTime_usec\n1,1000,2000\n3,4000,3000\n4,2500,2500\n5,9000,9500\n6,-500,-100\n")
    with pytest.warns(BadSegmentWarning, match="rejected 4 labelled segment"):
        ds = DVSGesture(raw, "train", num_frames=4)
    assert ds.targets == [0] and len(ds.rejected) == 4
    reasons = [r[-1] for r in ds.rejected]
    assert reasons[:2] == ["end <= start", "end <= start"]
    assert all(r.startswith("outside the recording") for r in reasons[2:])
    assert ds[0][0].sum() > 0
    # conversion drops the same segments instead of writing all-zero samples
    with pytest.warns(BadSegmentWarning, match="rejected 4"):
        counts = convert_dvs_gesture(raw, tmp_path / "conv", splits=("train",), progress=False)
    assert counts == {"train": 1}
    # a recording without any event (cut right after its header): all its segments are rejected
    data = (raw / "user02_led.aedat").read_bytes()
    (raw / "user02_led.aedat").write_bytes(data[: data.index(b"#!END-HEADER") + len(b"#!END-HEADER\r\n")])
    (raw / "trials_to_test.txt").write_text("user02_led.aedat\n")
    with pytest.warns(BadSegmentWarning, match="recording has no events"):
        assert len(DVSGesture(raw, "test")) == 0
