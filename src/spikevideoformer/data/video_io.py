"""Video reading and writing with PyAV (which bundles FFmpeg).

* :func:`read_video` decodes sequentially and keeps only the requested frames,
  returning a uint8 tensor ``[N, H, W, 3]`` (RGB).
* :func:`write_video` writes a real video file (H.264 ``libx264`` when
  available, else MPEG-4 part 2) atomically: it encodes into a hidden temporary
  file in the destination folder that replaces the target when complete
  (:func:`spikevideoformer.atomic.atomic_path`).
* Corrupt, zero-byte, truncated or non-video files raise :class:`VideoDecodeError`
  (a ``ValueError``) naming the file; a missing file raises ``FileNotFoundError``.

Truncation check (see :func:`looks_truncated`): every read demuxes the whole file
(decoding stops after the last requested frame, demuxing does not, which is cheap)
and compares what is there with what the container declares -- ``stream.frames``,
else duration x frame rate for formats whose header states a duration
(:data:`DECLARING_FORMATS`).  A file more than ``max(2 frames, 5 %)`` short of that
is truncated, unless its packets' timestamps reach the declared duration (then only
the header's frame count is wrong and the file is used).  Formats that declare
nothing (MPEG-PS/TS, raw streams: FFmpeg estimates their duration from the data
itself) cannot be checked this way.
"""
from __future__ import annotations

import math
import os
from fractions import Fraction
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch

from ..atomic import atomic_path

__all__ = ["DECLARING_FORMATS", "VideoDecodeError", "read_video", "count_frames",
           "looks_truncated", "write_video", "video_info", "default_codec"]

IndexSpec = Union[None, Sequence[int], Callable[[int], Sequence[int]]]


class VideoDecodeError(ValueError):
    """A file exists but cannot be decoded as a video (corrupt, empty, truncated, no video stream)."""

    def __init__(self, path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot decode video {self.path!r}: {reason}")


def _av():
    import av  # imported lazily so that importing the package stays cheap

    return av


def _check_path(path) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"video file not found: {path!r}")
    if os.path.isdir(path):
        raise VideoDecodeError(path, "is a directory")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, "file is empty (0 bytes)")
    return path


def _open_video(path: str):
    av = _av()
    try:
        container = av.open(path, mode="r", metadata_errors="ignore")
    except (av.FFmpegError, OSError, EOFError, UnicodeDecodeError) as exc:
        raise VideoDecodeError(path, f"{type(exc).__name__}: {exc}") from None
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(path, "no video stream")
    return container


def _estimate_frames(container) -> int:
    """Container frame count; 0 when unknown."""
    stream = container.streams.video[0]
    n = int(stream.frames or 0)
    if n > 0:
        return n
    rate = stream.average_rate or stream.guessed_rate
    if rate and stream.duration and stream.time_base:
        return max(0, int(round(float(stream.duration * stream.time_base * rate))))
    if rate and container.duration:
        return max(0, int(round(container.duration / 1_000_000 * float(rate))))
    return 0


#: container formats (FFmpeg demuxer names) whose header states the duration
DECLARING_FORMATS = frozenset({"mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm", "avi", "asf", "flv"})
#: a file may hold this many frames fewer than declared: max(frames, fraction x declared)
TRUNCATION_TOLERANCE = (2, 0.05)


def _tolerance(declared: int) -> int:
    frames, fraction = TRUNCATION_TOLERANCE
    return max(frames, int(math.ceil(fraction * declared)))


def looks_truncated(declared_frames: int, declared_seconds: Optional[float], rate: float,
                    found_frames: int, end_seconds: Optional[float]) -> bool:
    """Decide whether a file holds clearly less than its container declares.

    ``declared_frames <= 0`` (nothing declared) is never truncated.  Otherwise a
    file with ``found_frames >= declared - tol`` (``tol = max(2, ceil(5 % of declared))``)
    is complete; a shorter one is still complete when ``end_seconds`` (end of its
    last packet) reaches ``declared_seconds - tol / rate`` -- the data runs to the
    declared end of the stream and only the header's frame count is wrong.
    """
    if declared_frames <= 0:
        return False
    tol = _tolerance(declared_frames)
    if found_frames >= declared_frames - tol:
        return False
    if declared_seconds and rate > 0 and end_seconds is not None:
        return end_seconds < declared_seconds - tol / rate
    return True


class _Declared(NamedTuple):
    frames: int              # 0: nothing declared
    seconds: Optional[float]  # declared duration
    rate: float
    per_stream: bool          # seconds is the video stream's own duration (else the container's)


def _declared(container) -> _Declared:
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate
    rate = float(rate) if rate else 0.0
    seconds, per_stream = None, False
    if set(container.format.name.split(",")) & DECLARING_FORMATS:
        if stream.duration and stream.time_base:
            seconds, per_stream = float(stream.duration * stream.time_base), True
        elif container.duration:
            seconds = container.duration / 1_000_000
    frames = int(stream.frames or 0)
    if frames <= 0 and seconds and rate:
        frames = int(round(seconds * rate))
    return _Declared(frames, seconds, rate, per_stream)


class _Pass(NamedTuple):
    kept: Dict[int, np.ndarray]
    decoded: int    # frames decoded
    complete: bool  # decoding ran to the end of the stream, so ``decoded`` is the true count
    packets: int    # non-empty video packets in the whole file


def _decode_pass(path: str, wanted: Optional[Sequence[int]]) -> _Pass:
    """One pass over the file: decode up to the last wanted frame (all if ``None``, none if
    empty), demux the rest, then apply the truncation check (see the module docstring)."""
    av = _av()
    needed = None if wanted is None else set(int(i) for i in wanted)
    stop = None if needed is None else max(needed, default=-1)
    kept: Dict[int, np.ndarray] = {}
    decoded = packets = 0
    decoding = stop is None or stop >= 0
    error = None
    v_end = all_end = None
    container = _open_video(path)
    try:
        declared = _declared(container)
        vs = container.streams.video[0]
        vs.thread_type = "AUTO"
        v_start = float(vs.start_time * vs.time_base) if vs.start_time is not None else 0.0
        c_start = container.start_time / 1_000_000 if container.start_time is not None else 0.0
        streams = [st for st in container.streams if st.type in ("video", "audio")]
        try:
            for packet in container.demux(streams):
                is_video = packet.stream.index == vs.index
                if packet.size and packet.pts is not None and packet.time_base:
                    dur = float((packet.duration or 0) * packet.time_base)
                    if is_video and dur <= 0 and declared.rate:
                        dur = 1.0 / declared.rate
                    end = float(packet.pts * packet.time_base) + dur
                    all_end = end - c_start if all_end is None else max(all_end, end - c_start)
                    if is_video:
                        v_end = end - v_start if v_end is None else max(v_end, end - v_start)
                if not is_video:
                    continue
                packets += bool(packet.size)
                if not decoding:
                    continue
                try:
                    frames = packet.decode()
                except (av.FFmpegError, ValueError, RuntimeError) as exc:
                    error, decoding = f"{type(exc).__name__} after {decoded} frames: {exc}", False
                    continue
                for frame in frames:
                    if needed is None or decoded in needed:
                        kept[decoded] = frame.to_ndarray(format="rgb24")
                    decoded += 1
                    if stop is not None and decoded > stop:
                        decoding = False
                        break
        except (av.FFmpegError, OSError, EOFError) as exc:  # demuxer error
            error = error or f"{type(exc).__name__} while reading packets: {exc}"
            decoding = False
    finally:
        container.close()
    complete = decoding and error is None
    found = decoded if complete else max(decoded, packets)
    end = v_end if declared.per_stream else all_end
    if looks_truncated(declared.frames, declared.seconds, declared.rate, found, end):
        ends = (f"; data ends at {end:.2f} s of {declared.seconds:.2f} s"
                if end is not None and declared.seconds else "")
        raise VideoDecodeError(path, f"truncated file: {'decoded' if complete else 'found'} {found} of "
                                     f"{declared.frames} declared frames{ends}")
    if error is not None:
        raise VideoDecodeError(path, error)
    return _Pass(kept, decoded, complete, packets)


def count_frames(path) -> int:
    """Number of video packets (= frames for common codecs), counted by demuxing the whole file
    without decoding; raises :class:`VideoDecodeError` for a truncated or unreadable file."""
    path = _check_path(path)
    n = _decode_pass(path, []).packets
    if n == 0:
        raise VideoDecodeError(path, "no video frames")
    return n


def _uniform_indices(num_frames: int) -> Callable[[int], List[int]]:
    def pick(n: int) -> List[int]:
        return [min(n - 1, int((i + 0.5) * n / num_frames)) for i in range(num_frames)]

    return pick


def read_video(path, num_frames: Optional[int] = None, indices: IndexSpec = None) -> torch.Tensor:
    """Decode a video into a uint8 tensor ``[N, H, W, 3]`` (RGB).

    Args:
        path: video file.
        num_frames: if given (and ``indices`` is None), return ``num_frames``
            frames taken at the centres of equal temporal segments.
        indices: frame indices to return (any order, repeats allowed), or a
            callable ``f(num_total) -> indices`` evaluated on the frame count.
            The count comes from the container or, when unknown, from counting
            packets; if it proves wrong the file is decoded again with the
            true count.  ``None`` (and no ``num_frames``) returns all frames.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        VideoDecodeError: the file is empty, corrupt, truncated (holds fewer
            frames than its container declares, see :func:`looks_truncated`),
            has no video stream, no decodable frame, or fewer frames than an
            explicit index.  The whole file is always demuxed for this check.
    """
    path = _check_path(path)
    if num_frames is not None:
        if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
            raise ValueError(f"num_frames must be a positive int, got {num_frames!r}")
        if indices is not None:
            raise ValueError("pass either num_frames or indices, not both")
        indices = _uniform_indices(int(num_frames))

    if indices is None:  # everything
        res = _decode_pass(path, None)
        order = list(range(res.decoded))
    elif callable(indices):
        container = _open_video(path)
        estimate = _estimate_frames(container)
        container.close()
        if estimate <= 0:
            estimate = _decode_pass(path, []).packets
        if estimate <= 0:
            raise VideoDecodeError(path, "no video frames")
        order = _check_indices(path, indices(estimate), estimate)
        res = _decode_pass(path, order)
        if res.complete and any(i not in res.kept for i in order):  # count was wrong: redo with the true count
            if res.decoded == 0:
                raise VideoDecodeError(path, "no decodable video frames")
            order = _check_indices(path, indices(res.decoded), res.decoded)
            res = _decode_pass(path, order)
    else:
        order = _check_indices(path, indices, None)
        res = _decode_pass(path, order)
    if res.decoded == 0:
        raise VideoDecodeError(path, "no decodable video frames")
    missing = [i for i in order if i not in res.kept]
    if missing:
        raise VideoDecodeError(path, f"only {res.decoded} decodable frames, frame {missing[0]} requested")
    return torch.from_numpy(np.stack([res.kept[i] for i in order]))


def _check_indices(path: str, idx, total: Optional[int]) -> List[int]:
    try:
        out = [int(i) for i in idx]
    except (TypeError, ValueError):
        raise TypeError(f"frame indices for {path!r} must be a sequence of ints, got {idx!r}") from None
    if not out:
        raise ValueError(f"no frame indices requested for {path!r}")
    bad = [i for i in out if i < 0 or (total is not None and i >= total)]
    if bad:
        raise ValueError(f"frame index {bad[0]} out of range for {path!r}"
                         + (f" with {total} frames" if total is not None else ""))
    return out


def video_info(path) -> dict:
    """Container metadata: ``num_frames`` (0 if unknown), ``fps``, ``width``, ``height``, ``codec``."""
    path = _check_path(path)
    container = _open_video(path)
    try:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        return dict(num_frames=_estimate_frames(container), fps=float(rate) if rate else 0.0,
                    width=int(stream.codec_context.width), height=int(stream.codec_context.height),
                    codec=stream.codec_context.name)
    finally:
        container.close()


def default_codec() -> str:
    """``"libx264"`` if this FFmpeg build has it, else ``"mpeg4"``."""
    return "libx264" if "libx264" in _av().codecs_available else "mpeg4"


def _frames_to_uint8(frames) -> np.ndarray:
    """Accept uint8 ``[N,H,W,3]`` or float ``[N,3,H,W]`` in [0, 1] (tensor or array) -> uint8 NHWC."""
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(frames)
    if not isinstance(frames, torch.Tensor):
        raise TypeError(f"frames must be a torch.Tensor or numpy array, got {type(frames).__name__}")
    if frames.dim() != 4 or frames.shape[0] == 0:
        raise ValueError(f"frames must be 4-D with at least one frame, got shape {tuple(frames.shape)}")
    if frames.dtype == torch.uint8:
        if frames.shape[-1] != 3:
            raise ValueError(f"uint8 frames must be [N, H, W, 3], got shape {tuple(frames.shape)}")
        return frames.contiguous().numpy()
    if frames.is_floating_point():
        if frames.shape[1] != 3:
            raise ValueError(f"float frames must be [N, 3, H, W], got shape {tuple(frames.shape)}")
        return (frames.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
    raise TypeError(f"frames must be uint8 [N,H,W,3] or float [N,3,H,W], got dtype {frames.dtype}")


_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi", ".webm": "webm"}


def write_video(path, frames, fps: Union[int, float, Fraction] = 25, codec: Optional[str] = None,
                crf: int = 18) -> str:
    """Write frames to a video file atomically and return the path.

    Args:
        path: destination (``.mp4``, ``.mkv``, ``.avi``, ``.mov``; ``.webm`` needs ``codec="libvpx"``).
        frames: uint8 ``[N, H, W, 3]`` RGB or float ``[N, 3, H, W]`` in [0, 1].
        fps: frame rate (> 0).
        codec: FFmpeg encoder; default :func:`default_codec`.  With yuv420p,
            odd widths/heights are padded to even by repeating the last row/column.
        crf: libx264 quality (0 = lossless, 18 = visually lossless).
    """
    av = _av()
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in _FORMATS:
        raise ValueError(f"unsupported video extension {ext!r} for {path!r}; use one of {sorted(_FORMATS)}")
    if isinstance(fps, bool) or not isinstance(fps, (int, float, Fraction)) or not fps > 0:
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    rate = Fraction(fps).limit_denominator(1001)
    data = _frames_to_uint8(frames)
    pad_h, pad_w = data.shape[1] % 2, data.shape[2] % 2
    if pad_h or pad_w:
        data = np.pad(data, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    codec = codec or default_codec()
    if codec not in av.codecs_available:
        raise ValueError(f"video encoder {codec!r} is not available in this FFmpeg build")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"output folder does not exist: {folder!r}")
    with atomic_path(path, suffix=".tmp" + ext) as tmp:
        with av.open(tmp, mode="w", format=_FORMATS[ext]) as container:
            stream = container.add_stream(codec, rate=rate)
            stream.width, stream.height = int(data.shape[2]), int(data.shape[1])
            stream.pix_fmt = "yuv420p"
            if codec == "libx264":
                stream.options = {"crf": str(int(crf)), "preset": "veryfast"}
            else:
                stream.bit_rate = max(1_000_000, int(data.shape[1] * data.shape[2] * float(rate) * 2))
            for img in data:
                for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return path
