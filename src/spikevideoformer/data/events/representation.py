"""Event-stream containers, validation and dense representations.

An *event stream* is a numpy structured array (or a mapping of equal-length 1-D arrays) with
the fields

* ``x`` -- column, integer in ``[0, W)``
* ``y`` -- row, integer in ``[0, H)``
* ``t`` -- timestamp in microseconds, integer or float, ``>= 0`` and non-decreasing
* ``p`` -- polarity, either ``{0, 1}`` or ``{-1, +1}``; always normalised to ``0 = OFF``,
  ``1 = ON``.

Sensor sizes are always ``(H, W)``.

Frames for the model are float32 ``[T, 2, H, W]`` with **channel 0 = ON** (brightness
increase, ``p == 1``) and **channel 1 = OFF** (``p == 0``).

Everything here is vectorised numpy (``np.bincount`` / ``np.searchsorted``), linear in the
number of events.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

__all__ = [
    "EVENT_DTYPE",
    "EVENT_FIELDS",
    "ON_CHANNEL",
    "OFF_CHANNEL",
    "make_events",
    "validate_events",
    "events_to_frames",
    "events_to_voxel_grid",
]

#: Canonical dtype of an event stream (``t`` becomes float64 when the input ``t`` is float).
EVENT_DTYPE = np.dtype([("x", "<i4"), ("y", "<i4"), ("t", "<i8"), ("p", "<i1")])
_EVENT_DTYPE_FLOAT_T = np.dtype([("x", "<i4"), ("y", "<i4"), ("t", "<f8"), ("p", "<i1")])
EVENT_FIELDS = ("x", "y", "t", "p")
#: Frame channel holding ON events (``p == 1``).
ON_CHANNEL = 0
#: Frame channel holding OFF events (``p == 0``).
OFF_CHANNEL = 1


# --------------------------------------------------------------------------------------------
# containers and validation
# --------------------------------------------------------------------------------------------
def _fields_of(events: Any) -> dict[str, np.ndarray]:
    """The raw field arrays of a structured array / mapping; ValueError on anything else."""
    if isinstance(events, np.ndarray) and events.dtype.names is not None:
        what, present = "fields", list(events.dtype.names)
    elif isinstance(events, Mapping):
        what, present = "keys", sorted(map(str, events))
    else:
        raise ValueError(
            "events must be a numpy structured array or a mapping with fields x, y, t, p; "
            f"got {type(events).__name__}"
            + (f" with dtype {events.dtype} (no named fields)" if isinstance(events, np.ndarray) else "")
        )
    missing = [f for f in EVENT_FIELDS if f not in present]
    if missing:
        raise ValueError(
            f"event stream is missing field(s) {missing}; it has {what} {present} "
            f"(required: {list(EVENT_FIELDS)})"
        )
    return {f: np.asarray(events[f]) for f in EVENT_FIELDS}


def _check_numeric(name: str, a: np.ndarray) -> None:
    if a.dtype.kind not in "biuf":
        raise ValueError(f"field '{name}' must be numeric, got dtype {a.dtype}")


def _integral(name: str, a: np.ndarray) -> np.ndarray:
    """``a`` as int64; float input must hold integral values."""
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)):
            i = int(np.flatnonzero(~np.isfinite(a))[0])
            raise ValueError(f"field '{name}' has a non-finite value {a[i]} at index {i}")
        bad = np.flatnonzero(a != np.floor(a))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"field '{name}' must hold integers; found {a[i]} at index {i}")
    return a.astype(np.int64, copy=False)


def validate_events(
    events: Any,
    sensor_size: Sequence[int] | None = None,
    allow_empty: bool = True,
) -> np.ndarray:
    """Check an event stream and return it in canonical form.

    Args:
        events: structured array or mapping with fields ``x, y, t, p``.
        sensor_size: ``(H, W)``; when given, coordinates must satisfy ``0 <= x < W`` and
            ``0 <= y < H``.
        allow_empty: when False, a stream with no events is an error.

    Returns:
        A new structured array of dtype :data:`EVENT_DTYPE` (``t`` float64 when the input
        ``t`` is float) with polarity normalised to ``0 = OFF, 1 = ON``.

    Raises:
        ValueError: naming the problem -- missing fields, mismatched lengths, non-numeric
            dtypes, negative / non-finite / unsorted timestamps (with the index), coordinates
            outside the sensor (with the offending value, index and bound), polarity values
            outside ``{0, 1}`` / ``{-1, +1}``, or an empty stream when ``allow_empty=False``.
    """
    f = _fields_of(events)
    for name, a in f.items():
        if a.ndim != 1:
            raise ValueError(f"field '{name}' must be 1-D, got shape {a.shape}")
        _check_numeric(name, a)
    lengths = {name: a.shape[0] for name, a in f.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"event fields have different lengths: {lengths}")
    n = lengths["t"]
    if n == 0 and not allow_empty:
        raise ValueError("event stream is empty (no events) but allow_empty=False")

    x = _integral("x", f["x"])
    y = _integral("y", f["y"])

    t = f["t"]
    float_t = t.dtype.kind == "f"
    if float_t:
        t = t.astype(np.float64, copy=False)
        if not np.all(np.isfinite(t)):
            i = int(np.flatnonzero(~np.isfinite(t))[0])
            raise ValueError(f"timestamp t[{i}] = {t[i]} is not finite")
    else:
        t = t.astype(np.int64, copy=False)
    if n:
        if t.min() < 0:
            i = int(np.flatnonzero(t < 0)[0])
            raise ValueError(f"negative timestamp t[{i}] = {t[i]} (timestamps must be >= 0 microseconds)")
        bad = np.flatnonzero(t[1:] < t[:-1])
        if bad.size:
            i = int(bad[0]) + 1
            raise ValueError(
                f"timestamps are not sorted: t[{i}] = {t[i]} < t[{i - 1}] = {t[i - 1]} "
                "(event streams must be non-decreasing in t; sort with np.argsort(t, kind='stable'))"
            )

    for name, a in (("x", x), ("y", y)):
        if n and a.min() < 0:
            i = int(np.flatnonzero(a < 0)[0])
            raise ValueError(f"coordinate {name}[{i}] = {a[i]} is negative")
    if sensor_size is not None:
        H, W = _sensor_hw(sensor_size)
        for name, a, bound, dim in (("x", x, W, "width W"), ("y", y, H, "height H")):
            if n and a.max() >= bound:
                i = int(np.flatnonzero(a >= bound)[0])
                raise ValueError(
                    f"coordinate {name}[{i}] = {a[i]} is outside the sensor: {dim} = {bound}, "
                    f"so {name} must be in [0, {bound - 1}] (sensor_size is (H, W) = ({H}, {W}))"
                )

    p = f["p"]
    if p.dtype.kind == "b":
        p = p.astype(np.int8)
    elif n:
        is01 = (p == 0) | (p == 1)
        if is01.all():
            p = p.astype(np.int8)
        else:
            ispm = (p == -1) | (p == 1)
            if ispm.all():
                p = (p > 0).astype(np.int8)
            else:
                vals = np.unique(p)
                shown = vals[:8].tolist()
                raise ValueError(
                    f"polarity values must be {{0, 1}} or {{-1, +1}}; found {shown}"
                    f"{' ...' if vals.size > 8 else ''}"
                )
    else:
        p = p.astype(np.int8)

    out = np.empty(n, dtype=_EVENT_DTYPE_FLOAT_T if float_t else EVENT_DTYPE)
    if n:
        if x.max() > np.iinfo(np.int32).max or y.max() > np.iinfo(np.int32).max:
            raise ValueError("coordinates do not fit in int32")
    out["x"] = x
    out["y"] = y
    out["t"] = t
    out["p"] = p
    return out


def make_events(x: Any, y: Any, t: Any, p: Any, sensor_size: Sequence[int] | None = None) -> np.ndarray:
    """Build a validated canonical event array from four 1-D arrays."""
    return validate_events({"x": x, "y": y, "t": t, "p": p}, sensor_size=sensor_size)


def _sensor_hw(sensor_size: Sequence[int]) -> tuple[int, int]:
    try:
        H, W = (int(v) for v in sensor_size)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"sensor_size must be (H, W), got {sensor_size!r}") from e
    if H <= 0 or W <= 0:
        raise ValueError(f"sensor_size must be positive (H, W), got {sensor_size!r}")
    return H, W


# --------------------------------------------------------------------------------------------
# frames
# --------------------------------------------------------------------------------------------
def _ceil_div(a: np.ndarray, b: int) -> np.ndarray:
    return -((-a) // b)


def _time_windows(t: np.ndarray, T: int, overlap: float, t0, t1) -> tuple[np.ndarray, np.ndarray]:
    """``[lo, hi)`` event-index ranges of ``T`` time windows over ``[t0, t1]`` (``t`` sorted)."""
    integer = t.dtype.kind in "iu"
    k = np.arange(T, dtype=np.int64)
    if overlap == 0:
        if integer:
            t0i, D = int(t0), int(t1) - int(t0)
            edges = t0i + _ceil_div(np.arange(T + 1, dtype=np.int64) * D, T)
        else:
            edges = t0 + np.arange(T + 1, dtype=np.float64) * ((t1 - t0) / T)
        starts, ends = edges[:-1], edges[1:]
    else:
        D = float(t1) - float(t0)
        L = D / (1.0 + (T - 1) * (1.0 - overlap))
        S = L * (1.0 - overlap)
        starts = float(t0) + k * S
        ends = starts + L
        if integer:  # for integer t: t >= s  <=>  t >= ceil(s)
            starts = np.ceil(starts).astype(np.int64)
            ends = np.ceil(ends).astype(np.int64)
    lo = np.searchsorted(t, starts, side="left")
    hi = np.searchsorted(t, ends, side="left")
    hi[-1] = np.searchsorted(t, t1, side="right")  # the last window is closed on the right
    lo = np.minimum(lo, hi)
    return lo, hi


def _count_windows(N: int, T: int, overlap: float) -> tuple[np.ndarray, np.ndarray]:
    """``[lo, hi)`` ranges of ``T`` windows with (near-)equal event counts."""
    if overlap == 0:
        edges = _ceil_div(np.arange(T + 1, dtype=np.int64) * N, T)
        lo, hi = edges[:-1], edges[1:].copy()
    else:
        L = N / (1.0 + (T - 1) * (1.0 - overlap))
        S = L * (1.0 - overlap)
        k = np.arange(T, dtype=np.float64)
        lo = np.ceil(k * S).astype(np.int64)
        hi = np.ceil(k * S + L).astype(np.int64)
    hi[-1] = N
    hi = np.clip(hi, 0, N)
    lo = np.minimum(np.clip(lo, 0, N), hi)
    return lo, hi


def _flat_index(ev: np.ndarray, H: int, W: int) -> np.ndarray:
    """Index into a flattened ``[2, H, W]`` frame: channel 0 = ON (p=1), 1 = OFF (p=0)."""
    ch = 1 - ev["p"].astype(np.int64)
    return (ch * H + ev["y"].astype(np.int64)) * W + ev["x"].astype(np.int64)


def _finish_frames(frames: np.ndarray, clip_value, normalize) -> np.ndarray:
    if clip_value is not None:
        if clip_value <= 0:
            raise ValueError(f"clip_value must be > 0, got {clip_value}")
        np.minimum(frames, np.float32(clip_value), out=frames)
    if normalize is None:
        pass
    elif normalize == "max":
        m = frames.max() if frames.size else 0.0
        if m > 0:
            frames /= m
    elif normalize == "binary":
        frames = (frames > 0).astype(np.float32)
    else:
        raise ValueError(f"normalize must be None, 'max' or 'binary', got {normalize!r}")
    return frames


def accumulate_bins(
    ev: np.ndarray, bins: np.ndarray, num_frames: int, sensor_size: Sequence[int]
) -> np.ndarray:
    """Counts ``[num_frames, 2, H, W]`` (float32) of canonical events given a bin per event."""
    H, W = _sensor_hw(sensor_size)
    flat = bins.astype(np.int64) * (2 * H * W) + _flat_index(ev, H, W)
    counts = np.bincount(flat, minlength=num_frames * 2 * H * W)
    return counts.astype(np.float32).reshape(num_frames, 2, H, W)


def events_to_frames(
    events: Any,
    sensor_size: Sequence[int],
    num_frames: int,
    mode: str = "time",
    overlap: float = 0.0,
    clip_value: float | None = None,
    normalize: str | None = None,
    time_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Bin events into ON/OFF count frames ``[T, 2, H, W]`` (float32; ch 0 = ON, 1 = OFF).

    Args:
        events: event stream (validated here against ``sensor_size``).
        sensor_size: ``(H, W)``.
        num_frames: ``T``.
        mode: ``"time"`` -- ``T`` equal time windows spanning ``[t_first, t_last]`` (or
            ``time_range``); windows are half-open ``[start, end)`` except the last, which is
            closed, so an event exactly on an inner edge goes to the later bin and the last event
            goes to the last bin. A zero-duration stream puts every event in the last bin.
            ``"count"`` -- ``T`` windows with equal event counts (sizes differ by at most 1:
            event ``i`` of ``N`` goes to bin ``floor(i * T / N)``).
        overlap: fraction in ``[0, 1)`` by which consecutive windows overlap (windows are
            lengthened so that the ``T`` windows still cover the whole span exactly). With
            ``overlap > 0`` an event may be counted in several frames.
        clip_value: if given, counts are clipped to at most this value.
        normalize: ``None`` (raw counts), ``"max"`` (divide by the global maximum) or
            ``"binary"`` (1 where at least one event, else 0). Applied after clipping.
        time_range: ``(t_start, t_end)`` in microseconds for ``"time"`` mode (and a filter for
            ``"count"`` mode); events outside it are dropped.

    With ``overlap=0``, ``clip_value=None``, ``normalize=None`` and no ``time_range`` the frames
    sum to the number of events.
    """
    H, W = _sensor_hw(sensor_size)
    T = int(num_frames)
    if T < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if not (0.0 <= float(overlap) < 1.0):
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if mode not in ("time", "count"):
        raise ValueError(f"mode must be 'time' or 'count', got {mode!r}")
    ev = validate_events(events, sensor_size=(H, W))
    t = ev["t"]
    if time_range is not None:
        t0, t1 = time_range
        if t1 < t0:
            raise ValueError(f"time_range must satisfy t_start <= t_end, got {time_range}")
        a = np.searchsorted(t, t0, side="left")
        b = np.searchsorted(t, t1, side="right")
        ev, t = ev[a:b], t[a:b]
    elif t.size:
        t0, t1 = t[0], t[-1]
    else:
        t0 = t1 = 0

    frames = np.zeros((T, 2 * H * W), dtype=np.float32)
    if t.size:
        if mode == "time":
            lo, hi = _time_windows(t, T, float(overlap), t0, t1)
        else:
            lo, hi = _count_windows(t.size, T, float(overlap))
        flat = _flat_index(ev, H, W)
        if overlap == 0:
            bins = np.repeat(np.arange(T, dtype=np.int64), hi - lo)
            flat = flat[lo[0]: hi[-1]] + bins * (2 * H * W)
            frames = np.bincount(flat, minlength=T * 2 * H * W).astype(np.float32).reshape(T, 2 * H * W)
        else:
            for k in range(T):
                if hi[k] > lo[k]:
                    frames[k] = np.bincount(flat[lo[k]: hi[k]], minlength=2 * H * W)
    frames = frames.reshape(T, 2, H, W)
    return _finish_frames(frames, clip_value, normalize)


def events_to_voxel_grid(events: Any, sensor_size: Sequence[int], num_bins: int) -> np.ndarray:
    """Voxel grid ``[num_bins, H, W]`` (float32) with bilinear temporal interpolation.

    Following Zhu et al. (2019): timestamps are rescaled to ``t* = (B - 1)(t - t_first) /
    (t_last - t_first)`` and each event adds its polarity ``+1`` (ON) / ``-1`` (OFF) times
    ``max(0, 1 - |b - t*|)`` to bins ``b = floor(t*)`` and ``floor(t*) + 1``. The grid sums to
    ``#ON - #OFF`` at every pixel. A zero-duration stream (or ``num_bins == 1``) puts every
    event in bin 0.
    """
    H, W = _sensor_hw(sensor_size)
    B = int(num_bins)
    if B < 1:
        raise ValueError(f"num_bins must be >= 1, got {num_bins}")
    ev = validate_events(events, sensor_size=(H, W))
    grid = np.zeros(B * H * W, dtype=np.float64)
    if ev.size:
        t = ev["t"].astype(np.float64)
        span = t[-1] - t[0]
        ts = (B - 1) * (t - t[0]) / span if span > 0 else np.zeros_like(t)
        left = np.floor(ts).astype(np.int64)
        left = np.minimum(left, B - 1)
        w_right = ts - left
        pol = ev["p"].astype(np.float64) * 2.0 - 1.0
        pix = ev["y"].astype(np.int64) * W + ev["x"].astype(np.int64)
        grid += np.bincount(left * (H * W) + pix, weights=pol * (1.0 - w_right), minlength=B * H * W)
        has_right = left + 1 < B
        if has_right.any():
            idx = (left[has_right] + 1) * (H * W) + pix[has_right]
            grid += np.bincount(idx, weights=(pol * w_right)[has_right], minlength=B * H * W)
    return grid.astype(np.float32).reshape(B, H, W)
