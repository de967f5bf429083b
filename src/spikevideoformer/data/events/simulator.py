"""A small ESIM / v2e-style event-camera simulator for converting videos to events.

Model (per pixel, vectorised over the image):

1. Frames are converted to intensity ``I`` in ``[0, 1]`` (uint8 / 255; RGB -> BT.601 luma
   ``0.299 R + 0.587 G + 0.114 B``) and to log intensity ``L = log(I + log_eps)``.
2. Each pixel keeps a reference level ``ref`` (initialised to ``L`` of the first frame).
   Between frames ``k-1`` and ``k`` the log intensity is assumed to change linearly.
   The ``j``-th ON crossing happens when ``L(t)`` reaches ``ref + j * C_on`` and the ``j``-th
   OFF crossing when it reaches ``ref - j * C_off``; as many events are emitted as thresholds
   are crossed, ``n = floor(|L_k - ref| / C)``. Each event's time is linearly interpolated
   between the two frame timestamps, floored to whole microseconds and kept in
   ``[t_{k-1}, t_k - 1]`` -- i.e. events of the change from frame ``k-1`` to ``k`` lie in the
   half-open interval ``[t_{k-1}, t_k)``.
3. Every emitted event moves ``ref`` by ``+C_on`` / ``-C_off``.
4. Refractory period: an event within ``refractory_us`` of the same pixel's previous emitted
   event is suppressed, and the reference is *not* moved for it; the unsignalled contrast is
   carried over (those crossings are emitted at the start of the next frame interval if the
   pixel is no longer refractory and the contrast is still there).
5. Optional shot noise: a Poisson number of events with mean ``noise_rate_hz * H * W *
   duration`` at uniformly random pixels, times in ``[t_0, t_last)`` and polarities (50/50).
   Noise events do not touch the reference and are not subject to the refractory period.

Default timestamps are ``round(k * 1e6 / fps)`` microseconds.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .representation import EVENT_DTYPE, _finish_frames, accumulate_bins

__all__ = ["video_to_events", "frames_from_video_events"]


def _to_intensity(frames: Any) -> np.ndarray:
    """``[T, H, W]`` float64 intensity in [0, 1] from ``[T,H,W]``, ``[T,1,H,W]`` or ``[T,3,H,W]``."""
    if hasattr(frames, "detach"):  # torch tensor
        frames = frames.detach().cpu().numpy()
    a = np.asarray(frames)
    if a.dtype == np.uint8:
        a = a.astype(np.float64) / 255.0
    elif a.dtype.kind in "fiub":
        a = a.astype(np.float64)
        if a.size and (a.min() < -1e-6 or a.max() > 1.0 + 1e-6):
            raise ValueError(
                f"float frames must be in [0, 1] (got range [{a.min():.4g}, {a.max():.4g}]); "
                "divide by 255 or pass uint8"
            )
        a = np.clip(a, 0.0, 1.0)
    else:
        raise ValueError(f"frames must be numeric (uint8 or float in [0, 1]), got dtype {a.dtype}")
    if a.ndim == 3:
        return a
    if a.ndim == 4 and a.shape[1] == 1:
        return a[:, 0]
    if a.ndim == 4 and a.shape[1] == 3:
        return 0.299 * a[:, 0] + 0.587 * a[:, 1] + 0.114 * a[:, 2]
    raise ValueError(f"frames must be [T, H, W], [T, 1, H, W] or [T, 3, H, W], got shape {a.shape}")


def _timestamps(timestamps, T: int, fps: float) -> np.ndarray:
    if timestamps is None:
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        return np.round(np.arange(T, dtype=np.float64) * (1e6 / fps)).astype(np.int64)
    ts = np.asarray(timestamps)
    if ts.shape != (T,):
        raise ValueError(f"timestamps must have shape ({T},) (one per frame), got {ts.shape}")
    if ts.dtype.kind == "f" and np.any(ts != np.round(ts)):
        ts = np.round(ts)
    ts = ts.astype(np.int64)
    if T and ts[0] < 0:
        raise ValueError(f"timestamps must be >= 0 microseconds, got {ts[0]}")
    if T > 1 and np.any(np.diff(ts) <= 0):
        i = int(np.flatnonzero(np.diff(ts) <= 0)[0]) + 1
        raise ValueError(
            f"timestamps must be strictly increasing (microseconds): ts[{i}] = {ts[i]} <= ts[{i - 1}] = {ts[i - 1]}"
        )
    return ts


def _thresholds(contrast_threshold) -> tuple[float, float]:
    if np.ndim(contrast_threshold) == 0:
        c_on = c_off = float(contrast_threshold)
    else:
        c_on, c_off = (float(v) for v in contrast_threshold)
    if c_on <= 0 or c_off <= 0:
        raise ValueError(f"contrast thresholds must be > 0, got {contrast_threshold}")
    return c_on, c_off


def video_to_events(
    frames: Any,
    timestamps: Sequence[int] | None = None,
    fps: float = 30.0,
    contrast_threshold: float | tuple[float, float] = 0.2,
    refractory_us: float = 0.0,
    noise_rate_hz: float = 0.0,
    log_eps: float = 1e-3,
    seed: int = 0,
) -> np.ndarray:
    """Simulate a DVS on a video; returns a canonical event array (see module docstring).

    Args:
        frames: ``[T, H, W]`` / ``[T, 1, H, W]`` / ``[T, 3, H, W]``, uint8 or float in [0, 1]
            (numpy array or torch tensor).
        timestamps: ``T`` strictly increasing frame times in microseconds (default uniform at
            ``fps``).
        fps: frame rate used when ``timestamps`` is None.
        contrast_threshold: log-intensity threshold ``C``, or ``(C_on, C_off)``.
        refractory_us: per-pixel refractory period in microseconds (0 = none).
        noise_rate_hz: shot-noise events per pixel per second (0 = none).
        log_eps: ``L = log(I + log_eps)``.
        seed: seed of the noise generator.

    Returns:
        Structured array (dtype :data:`EVENT_DTYPE`) sorted by ``t`` with ``p = 1`` for ON.
    """
    I = _to_intensity(frames)
    T, H, W = I.shape
    ts = _timestamps(timestamps, T, fps)
    c_on, c_off = _thresholds(contrast_threshold)
    if refractory_us < 0:
        raise ValueError(f"refractory_us must be >= 0, got {refractory_us}")
    if noise_rate_hz < 0:
        raise ValueError(f"noise_rate_hz must be >= 0, got {noise_rate_hz}")
    if log_eps <= 0:
        raise ValueError(f"log_eps must be > 0, got {log_eps}")

    HW = H * W
    L = np.log(I.reshape(T, HW) + log_eps)
    chunks_pix, chunks_t, chunks_p = [], [], []
    if T > 1:
        ref = L[0].copy()
        last_t = np.full(HW, -np.inf)
        R = float(refractory_us)
        for k in range(1, T):
            Lp, Lc = L[k - 1], L[k]
            delta = Lc - ref
            n_on = np.floor(np.maximum(delta, 0.0) / c_on).astype(np.int64)
            n_off = np.floor(np.maximum(-delta, 0.0) / c_off).astype(np.int64)
            n_all = n_on + n_off
            active = np.flatnonzero(n_all)
            if active.size == 0:
                continue
            n = n_all[active]
            sign = np.where(n_on[active] > 0, 1.0, -1.0)
            C = np.where(sign > 0, c_on, c_off)
            lp, dl, r0 = Lp[active], Lc[active] - Lp[active], ref[active]
            t0, dt = float(ts[k - 1]), float(ts[k] - ts[k - 1])
            emitted = np.zeros(active.size, dtype=np.int64)
            pix_k, tau_k, pol_k = [], [], []
            for j in range(1, int(n.max()) + 1):
                m = np.flatnonzero(n >= j)
                level = r0[m] + sign[m] * j * C[m]
                # crossing already passed at the start of the interval (carried-over contrast)
                passed = sign[m] * (lp[m] - level) >= 0
                safe = np.where(dl[m] == 0, 1.0, dl[m])
                s = np.where(passed, 0.0, (level - lp[m]) / safe)
                tau = t0 + np.clip(s, 0.0, 1.0) * dt
                pix = active[m]
                if R > 0:
                    ok = tau - last_t[pix] >= R
                    m, tau, pix = m[ok], tau[ok], pix[ok]
                    if m.size == 0:
                        continue
                last_t[pix] = tau
                emitted[m] += 1
                pix_k.append(pix)
                tau_k.append(tau)
                pol_k.append(sign[m] > 0)
            ref[active] = r0 + sign * C * emitted
            if pix_k:
                pix_k = np.concatenate(pix_k)
                t_int = np.clip(np.floor(np.concatenate(tau_k)).astype(np.int64), ts[k - 1], ts[k] - 1)
                order = np.argsort(t_int, kind="stable")
                chunks_pix.append(pix_k[order])
                chunks_t.append(t_int[order])
                chunks_p.append(np.concatenate(pol_k)[order])

    pix = np.concatenate(chunks_pix) if chunks_pix else np.zeros(0, np.int64)
    t = np.concatenate(chunks_t) if chunks_t else np.zeros(0, np.int64)
    p = np.concatenate(chunks_p).astype(np.int8) if chunks_p else np.zeros(0, np.int8)

    if noise_rate_hz > 0 and T > 1:
        rng = np.random.default_rng(seed)
        duration = float(ts[-1] - ts[0])
        n_noise = int(rng.poisson(noise_rate_hz * HW * duration * 1e-6))
        if n_noise:
            nt = rng.integers(ts[0], ts[-1], size=n_noise, dtype=np.int64)
            npix = rng.integers(0, HW, size=n_noise, dtype=np.int64)
            npol = rng.integers(0, 2, size=n_noise, dtype=np.int8)
            pix = np.concatenate([pix, npix])
            t = np.concatenate([t, nt])
            p = np.concatenate([p, npol])
            order = np.argsort(t, kind="stable")
            pix, t, p = pix[order], t[order], p[order]

    out = np.empty(t.size, dtype=EVENT_DTYPE)
    out["x"] = pix % W
    out["y"] = pix // W
    out["t"] = t
    out["p"] = p
    return out


def frames_from_video_events(
    frames: Any,
    num_frames: int | None = None,
    timestamps: Sequence[int] | None = None,
    fps: float = 30.0,
    clip_value: float | None = None,
    normalize: str | None = None,
    **simulator_kwargs,
) -> np.ndarray:
    """Simulate events from a video and bin them into model frames ``[num_frames, 2, H, W]``.

    Binning is "time" mode over the video's own time axis: with the default
    ``num_frames = T - 1`` bin ``i`` holds exactly the events caused by the change from video
    frame ``i`` to ``i + 1`` (events in ``[t_i, t_{i+1})``). Other ``num_frames`` split the
    piecewise-linear frame-time axis ``[0, T - 1]`` into equal parts. Channel 0 = ON,
    1 = OFF. ``simulator_kwargs`` go to :func:`video_to_events`.
    """
    I = _to_intensity(frames)
    T, H, W = I.shape
    if T < 2:
        raise ValueError(f"need at least 2 video frames to produce events, got {T}")
    ts = _timestamps(timestamps, T, fps)
    nf = T - 1 if num_frames is None else int(num_frames)
    if nf < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    ev = video_to_events(I, timestamps=ts, **simulator_kwargs)
    t = ev["t"]
    k = np.clip(np.searchsorted(ts, t, side="right") - 1, 0, T - 2)
    u = k + (t - ts[k]) / (ts[k + 1] - ts[k]).astype(np.float64)  # frame-time coordinate
    bins = np.clip(np.floor(u * nf / (T - 1)).astype(np.int64), 0, nf - 1)
    out = accumulate_bins(ev, bins, nf, (H, W))
    return _finish_frames(out, clip_value, normalize)
