"""DVS128 Gesture (Amir et al., CVPR 2017) as a PyTorch dataset.

Two on-disk layouts are accepted:

**Original release** (the ``DvsGesture`` folder as shipped)::

    root/
        user01_fluorescent.aedat            # AEDAT 3.1, see readers.read_aedat31
        user01_fluorescent_labels.csv       # class,startTime_usec,endTime_usec  (class 1..11)
        ...
        trials_to_train.txt                 # one .aedat file name per line
        trials_to_test.txt

Every labelled segment ``[startTime_usec, endTime_usec)`` of every listed trial is one sample;
its label is ``class - 1`` (0..10).

**Pre-converted** (written by :func:`convert_dvs_gesture`)::

    root/<split>/<class_id>/<trial>_<segment>.npz      # x, y, t, p, sensor_size

Frames are float32 ``[num_frames, 2, size, size]`` (channel 0 = ON, 1 = OFF).

Bad data, handled like bad video files: a recording that cannot be read (truncated or
corrupt ``.aedat``/``.npz``, events outside the 128x128 sensor) makes ``__getitem__`` return
``None`` with one :class:`SkippedRecordingWarning` per file and process, so
``collate_skip_none`` drops and counts it (``get_events``/``get_frames`` raise a
``ValueError`` naming the file).  Labelled segments that cannot hold events (``end <= start``,
or entirely outside the recording's first..last timestamp) are rejected when the dataset is
built, listed in ``self.rejected`` and named in one :class:`BadSegmentWarning`.
"""
from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from .readers import aedat31_time_span, read_aedat31, read_events, write_events
from .representation import events_to_frames

__all__ = ["DVSGesture", "GESTURE_CLASSES", "DVS128_SENSOR_SIZE", "convert_dvs_gesture", "read_gesture_labels",
           "SkippedRecordingWarning", "BadSegmentWarning"]

#: Class names, index = label (csv class id - 1).
GESTURE_CLASSES = (
    "hand_clapping",
    "right_hand_wave",
    "left_hand_wave",
    "right_arm_clockwise",
    "right_arm_counter_clockwise",
    "left_arm_clockwise",
    "left_arm_counter_clockwise",
    "arm_roll",
    "air_drums",
    "air_guitar",
    "other_gestures",
)
#: DVS128 sensor (H, W); x and y are 0..127.
DVS128_SENSOR_SIZE = (128, 128)

try:  # the dataset class is a torch Dataset when torch is available
    from torch.utils.data import Dataset as _Base
except ImportError:  # pragma: no cover
    _Base = object


class SkippedRecordingWarning(UserWarning):
    """A recording could not be read; its samples are skipped (once per file and process)."""


class BadSegmentWarning(UserWarning):
    """Labelled segments that cannot hold events were rejected (once per dataset construction)."""


def _check_split(split: str) -> str:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return split


def read_gesture_labels(path: str | os.PathLike) -> list[tuple[int, int, int]]:
    """Rows ``(label 0..10, start_us, end_us)`` of a ``*_labels.csv`` file (header optional)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"DVS Gesture label file not found: {path}")
    rows = []
    with open(path, newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh), start=1):
            row = [c.strip() for c in row if c.strip() != ""]
            if not row:
                continue
            try:
                cls, start, end = (int(float(v)) for v in row[:3])
            except ValueError:
                if lineno == 1:  # header: class,startTime_usec,endTime_usec
                    continue
                raise ValueError(f"{path}:{lineno}: expected 'class,startTime_usec,endTime_usec', got {row}")
            if not 1 <= cls <= len(GESTURE_CLASSES):
                raise ValueError(f"{path}:{lineno}: class {cls} outside 1..{len(GESTURE_CLASSES)}")
            rows.append((cls - 1, start, end))
    return rows


def _trial_list(root: Path, split: str) -> list[str]:
    path = root / f"trials_to_{split}.txt"
    names = [ln.strip() for ln in path.read_text().splitlines()]
    return [n for n in names if n and not n.startswith("#")]


_UNKNOWN_SPAN = "unknown"  # the recording could not be read: only end <= start is checked


def _split_segments(aedat: Path, rows, span) -> tuple[list, list]:
    """``(kept rows, rejected (file, label, start, end, reason))``; ``span`` = (first, last) event
    time, ``None`` for a recording without events, or ``_UNKNOWN_SPAN``."""
    kept, rejected = [], []
    for label, start, end in rows:
        if end <= start:
            reason = "end <= start"
        elif span is None:
            reason = "recording has no events"
        elif span != _UNKNOWN_SPAN and (end <= span[0] or start > span[1]):
            reason = f"outside the recording ({span[0]}..{span[1]} us)"
        else:
            kept.append((label, start, end))
            continue
        rejected.append((aedat.name, label, start, end, reason))
    return kept, rejected


def _warn_rejected(rejected: list) -> None:
    if rejected:
        shown = "; ".join(f"{f} class {lab + 1} [{a}, {b}): {why}" for f, lab, a, b, why in rejected[:5])
        warnings.warn(f"DVS Gesture: rejected {len(rejected)} labelled segment(s) that cannot hold events: "
                      f"{shown}{'; ...' if len(rejected) > 5 else ''}", BadSegmentWarning, stacklevel=3)


def _check_sensor(path: Path, events: np.ndarray) -> np.ndarray:
    if len(events) and (events["x"].max() >= 128 or events["y"].max() >= 128):
        raise ValueError(f"{path}: events outside the 128x128 DVS128 sensor "
                         f"(max x {int(events['x'].max())}, max y {int(events['y'].max())}); corrupt file?")
    return events


def _segment(events: np.ndarray, start: int, end: int) -> np.ndarray:
    t = events["t"]
    a = np.searchsorted(t, start, side="left")
    b = np.searchsorted(t, end, side="left")
    return events[a:b]


class DVSGesture(_Base):
    """DVS128 Gesture samples as ``(frames [num_frames, 2, size, size] float32 tensor, label)``.

    Args:
        root: folder with the original release (``trials_to_<split>.txt`` + ``.aedat`` +
            ``_labels.csv``) or the pre-converted layout ``root/<split>/<class_id>/*.npz``.
            The original layout is used when ``root/trials_to_<split>.txt`` exists.
        split: ``"train"`` or ``"test"``.
        num_frames: ``T``.
        size: output resolution; must divide 128 (coordinates are integer-divided by
            ``128 // size``, summing events of each block).
        mode: ``"time"`` or ``"count"`` binning (see :func:`events_to_frames`).
        overlap: passed to :func:`events_to_frames`.
        clip_value: passed to :func:`events_to_frames`.
        normalize: passed to :func:`events_to_frames`.
        transform: optional callable applied to the frames tensor.
        target_transform: optional callable applied to the label.

    Original-layout trials are parsed lazily; the most recently parsed trial is cached, so
    iterating in order parses each file once. Convert once with :func:`convert_dvs_gesture`
    for faster random access.
    """

    classes = GESTURE_CLASSES
    num_classes = len(GESTURE_CLASSES)
    sensor_size = DVS128_SENSOR_SIZE

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        num_frames: int = 16,
        size: int = 128,
        mode: str = "time",
        overlap: float = 0.0,
        clip_value: float | None = None,
        normalize: str | None = None,
        transform: Callable | None = None,
        target_transform: Callable | None = None,
    ) -> None:
        self.root = Path(root)
        self.split = _check_split(split)
        if int(size) < 1 or 128 % int(size):
            raise ValueError(f"size must divide 128 (e.g. 128, 64, 32), got {size}")
        if mode not in ("time", "count"):
            raise ValueError(f"mode must be 'time' or 'count', got {mode!r}")
        self.size = int(size)
        self.factor = 128 // self.size
        self.num_frames = int(num_frames)
        self.mode = mode
        self.overlap = overlap
        self.clip_value = clip_value
        self.normalize = normalize
        self.transform = transform
        self.target_transform = target_transform
        self._cache: tuple[Path, np.ndarray] | None = None
        self._bad: set = set()  # files found unreadable in this process (warned once)
        self.rejected: list[tuple[str, int, int, int, str]] = []
        # samples: (kind, path, start, end, label)
        self.samples: list[tuple[str, Path, int, int, int]] = []
        if not self.root.is_dir():
            raise FileNotFoundError(f"DVS Gesture root not found: {self.root}")
        if (self.root / f"trials_to_{split}.txt").is_file():
            self.layout = "aedat"
            for name in _trial_list(self.root, split):
                aedat = self.root / name
                if not aedat.is_file():
                    raise FileNotFoundError(f"trial listed in trials_to_{split}.txt not found: {aedat}")
                rows = read_gesture_labels(self.root / f"{aedat.stem}_labels.csv")
                try:
                    span = aedat31_time_span(aedat)
                except ValueError:  # unreadable: its samples are skipped (and counted) when loaded
                    span = _UNKNOWN_SPAN
                rows, rejected = _split_segments(aedat, rows, span)
                self.rejected += rejected
                self.samples += [("aedat", aedat, start, end, label) for label, start, end in rows]
            _warn_rejected(self.rejected)
        elif (self.root / split).is_dir():
            self.layout = "converted"
            for cdir in sorted((self.root / split).iterdir(), key=lambda p: p.name):
                if not cdir.is_dir():
                    continue
                try:
                    label = int(cdir.name)
                except ValueError:
                    raise ValueError(f"unexpected folder {cdir}: class folders must be named 0..10") from None
                if not 0 <= label < self.num_classes:
                    raise ValueError(f"unexpected class folder {cdir}: class id must be 0..10")
                for f in sorted(cdir.glob("*.npz")):
                    self.samples.append(("npz", f, 0, 0, label))
        else:
            raise FileNotFoundError(
                f"{self.root} holds neither the original DVS Gesture release "
                f"(trials_to_{split}.txt + *.aedat + *_labels.csv) nor a converted layout "
                f"({self.root / split}/<class_id>/*.npz)"
            )

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def targets(self) -> list[int]:
        return [s[4] for s in self.samples]

    def _trial_events(self, path: Path) -> np.ndarray:
        if self._cache is None or self._cache[0] != path:
            self._cache = None
            self._cache = (path, _check_sensor(path, read_aedat31(path)))
        return self._cache[1]

    def get_events(self, index: int) -> np.ndarray:
        """Events of sample ``index`` at full 128x128 resolution (canonical array)."""
        kind, path, start, end, _ = self.samples[index]
        if kind == "aedat":
            return _segment(self._trial_events(path), start, end)
        return read_events(path, sensor_size=DVS128_SENSOR_SIZE)

    def _frames(self, ev: np.ndarray) -> np.ndarray:
        if self.factor > 1:
            ev = ev.copy()
            ev["x"] //= self.factor
            ev["y"] //= self.factor
        return events_to_frames(ev, (self.size, self.size), self.num_frames, mode=self.mode,
                                overlap=self.overlap, clip_value=self.clip_value, normalize=self.normalize)

    def get_frames(self, index: int) -> np.ndarray:
        """Frames of sample ``index`` as a numpy array ``[num_frames, 2, size, size]``."""
        return self._frames(self.get_events(index))

    def __getitem__(self, index: int):
        """``(frames, label)``, or ``None`` (one warning per file and process) for an unreadable file."""
        import torch

        path = self.samples[index][1]
        if path in self._bad:
            return None
        try:
            ev = self.get_events(index)
        except (ValueError, OSError) as exc:
            self._bad.add(path)
            detail = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            warnings.warn(f"skipping unreadable event recording: {detail}", SkippedRecordingWarning, stacklevel=2)
            return None
        frames = torch.from_numpy(self._frames(ev))
        label = self.samples[index][4]
        if self.transform is not None:
            frames = self.transform(frames)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return frames, label


def convert_dvs_gesture(
    root: str | os.PathLike,
    out_root: str | os.PathLike,
    splits: tuple[str, ...] = ("train", "test"),
    compress: bool = False,
    progress: bool = True,
) -> dict[str, int]:
    """Convert the original release into ``out_root/<split>/<class_id>/<trial>_<seg>.npz``.

    Each trial is parsed once; every labelled segment is written (atomically) with
    :func:`write_events` including ``sensor_size = (128, 128)``. Returns the number of samples
    written per split.  Unreadable trials and segments that cannot hold events are not
    written; each is named in a warning, as in :class:`DVSGesture`.
    """
    from tqdm.auto import tqdm

    root, out_root = Path(root), Path(out_root)
    counts: dict[str, int] = {}
    for split in splits:
        _check_split(split)
        listing = root / f"trials_to_{split}.txt"
        if not listing.is_file():
            raise FileNotFoundError(f"trial list not found: {listing}")
        n = 0
        rejected = []
        for name in tqdm(_trial_list(root, split), desc=f"DVS Gesture {split}", disable=not progress):
            aedat = root / name
            try:
                events = _check_sensor(aedat, read_aedat31(aedat))
            except ValueError as exc:
                warnings.warn(f"not converted: {exc}", SkippedRecordingWarning, stacklevel=2)
                continue
            span = (int(events["t"][0]), int(events["t"][-1])) if len(events) else None
            rows = list(enumerate(read_gesture_labels(root / f"{aedat.stem}_labels.csv")))
            kept, bad = _split_segments(aedat, [r for _, r in rows], span)
            rejected += bad
            for seg, (label, start, end) in ((i, r) for i, r in rows if r in kept):
                out = out_root / split / str(label) / f"{aedat.stem}_{seg:02d}.npz"
                write_events(out, _segment(events, start, end), sensor_size=DVS128_SENSOR_SIZE, compress=compress)
                n += 1
        _warn_rejected(rejected)
        counts[split] = n
    return counts
