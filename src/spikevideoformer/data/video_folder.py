"""Video-classification datasets over real video files.

* :class:`VideoFolder` -- Kinetics layout ``root/<split>/<class_name>/<video>``.
* :class:`VideoList`  -- a CSV/TXT list of ``path,label`` or ``path label`` lines.

Train mode returns one clip ``[T, 3, size, size]`` (TSN segment sampling,
short-side resize to ``short_side``, random crop, horizontal flip, ImageNet
normalisation).  Eval mode returns ``num_clips x num_crops`` views stacked as
``[V, T, 3, size, size]`` (or ``[T, 3, size, size]`` when ``V == 1``).

Bad files never crash training: ``__getitem__`` returns ``None`` for a file that
is missing, empty, corrupt, truncated or not a video, and warns once per file
(per process) with a :class:`SkippedVideoWarning` naming it.  Use
:func:`collate_skip_none` as the DataLoader ``collate_fn``; each batch then
carries the number of dropped samples, counted in the main process::

    loader = DataLoader(ds, batch_size=8, num_workers=4, collate_fn=collate_skip_none)
    skipped = 0
    for batch in loader:
        if batch is None:                 # every sample of this batch was bad
            skipped += loader.batch_size  # (exact except for a short last batch)
            continue
        clips, labels, num_skipped = batch
        skipped += num_skipped
        ...
    print(f"{skipped} files skipped this epoch")

An always-exact alternative (default sampler, ``drop_last=False``) is
``skipped = len(loader.sampler) - samples_seen``.
"""
from __future__ import annotations

import csv
import os
import warnings
from typing import Iterable, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from .transforms import (IMAGENET_MEAN, _pos_int, IMAGENET_STD, center_crop, normalize, random_crop,
                         random_horizontal_flip, resize_short_side, sample_multi_clip_indices,
                         sample_segment_indices, three_crops, to_float_clip)
from .video_io import VideoDecodeError, read_video

__all__ = ["VIDEO_EXTENSIONS", "SkippedVideoWarning", "UnlistedFilesWarning", "VideoBatch", "VideoFolder",
           "VideoList", "collate_skip_none"]

#: suffixes of the video containers FFmpeg commonly decodes (matched case-insensitively)
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".qt", ".3gp", ".3g2", ".mkv", ".webm", ".avi", ".divx",
                    ".mpg", ".mpeg", ".m1v", ".m2v", ".vob", ".ts", ".mts", ".m2ts", ".flv", ".f4v",
                    ".wmv", ".asf", ".ogv", ".ogg", ".mxf", ".dv", ".nut", ".y4m", ".ivf", ".rm", ".rmvb")
#: operating-system metadata files that are never reported as unlisted
_OS_JUNK = frozenset({".ds_store", "thumbs.db", "desktop.ini", ".directory"})


class SkippedVideoWarning(UserWarning):
    """Emitted (once per file and process) when a video cannot be decoded and is skipped."""


class UnlistedFilesWarning(UserWarning):
    """Emitted once per :class:`VideoFolder` when files under the split folder are not used."""


class VideoBatch(NamedTuple):
    """Batch from :func:`collate_skip_none`: ``clips`` ``[B, ...]``, ``labels`` ``[B]``, ``num_skipped``."""

    clips: torch.Tensor
    labels: torch.Tensor
    num_skipped: int


def collate_skip_none(batch: Sequence) -> Optional[VideoBatch]:
    """Drop ``None`` samples and stack the rest into a :class:`VideoBatch`; ``None`` if all were bad."""
    if not isinstance(batch, (list, tuple)):
        raise TypeError(f"batch must be a list of samples, got {type(batch).__name__}")
    good = [s for s in batch if s is not None]
    if not good:
        return None
    clips = torch.stack([s[0] for s in good])
    labels = torch.as_tensor([int(s[1]) for s in good], dtype=torch.long)
    return VideoBatch(clips, labels, len(batch) - len(good))


class _VideoClipDataset(Dataset):
    """Shared loading / augmentation for :class:`VideoFolder` and :class:`VideoList`."""

    def __init__(self, samples: List[Tuple[str, int]], classes: List[str], num_frames: int, size: int,
                 train: bool, num_clips: int, num_crops: int, short_side: Optional[int],
                 mean: Sequence[float], std: Sequence[float], hflip: bool) -> None:
        self.samples = samples
        self.classes = list(classes)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.num_frames = _pos_int("num_frames", num_frames)
        self.size = _pos_int("size", size)
        self.train = bool(train)
        self.num_clips = _pos_int("num_clips", num_clips)
        self.num_crops = _pos_int("num_crops", num_crops)
        if self.num_crops not in (1, 3):
            raise ValueError(f"num_crops must be 1 or 3, got {num_crops}")
        if self.train and (self.num_clips > 1 or self.num_crops > 1):
            raise ValueError("num_clips/num_crops > 1 are for multi-view testing; set train=False")
        self.short_side = _pos_int("short_side", short_side if short_side is not None
                                   else int(round(self.size * 256 / 224)))
        if self.short_side < self.size:
            raise ValueError(f"short_side ({self.short_side}) must be >= size ({self.size})")
        self.mean, self.std = tuple(mean), tuple(std)
        self.hflip = bool(hflip)
        self._warned: set = set()

    @property
    def targets(self) -> List[int]:
        return [label for _, label in self.samples]

    @property
    def num_views(self) -> int:
        return 1 if self.train else self.num_clips * self.num_crops

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> Tuple[torch.Tensor, int]:
        """Decode and transform sample ``index``; raises on unreadable files (no skipping)."""
        path, label = self.samples[index]
        t = self.num_frames
        if self.train:
            rng = np.random.default_rng(int(torch.randint(0, 2 ** 62, (1,)).item()))
            frames = read_video(path, indices=lambda n: sample_segment_indices(n, t, True, rng))
            clip = resize_short_side(to_float_clip(frames), self.short_side)
            clip = random_crop(clip, self.size, rng)
            if self.hflip:
                clip = random_horizontal_flip(clip, 0.5, rng)
            return normalize(clip, self.mean, self.std).contiguous(), label
        k = self.num_clips
        frames = read_video(path, indices=lambda n: sum(sample_multi_clip_indices(n, t, k), []))
        clip = to_float_clip(frames)
        if self.num_crops == 1:
            crops = [center_crop(resize_short_side(clip, self.short_side), self.size)]
        else:
            crops = three_crops(resize_short_side(clip, self.size), self.size)
        views = [c[j * t:(j + 1) * t] for j in range(k) for c in crops]  # clip-major order
        out = normalize(torch.stack(views).flatten(0, 1), self.mean, self.std)
        out = out.view(len(views), t, *out.shape[1:])
        return (out[0] if len(views) == 1 else out).contiguous(), label

    def __getitem__(self, index: int):
        """``(clip, label)``, or ``None`` (with a one-time warning) if the file is unreadable."""
        try:
            return self.load(index)
        except (VideoDecodeError, OSError) as exc:
            path = self.samples[index][0]
            if path not in self._warned:
                self._warned.add(path)
                detail = str(exc) if path in str(exc) else f"{path!r}: {exc}"
                warnings.warn(f"skipping unreadable video: {detail}", SkippedVideoWarning, stacklevel=2)
            return None

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self)} videos, {len(self.classes)} classes, "
                f"num_frames={self.num_frames}, size={self.size}, train={self.train}, views={self.num_views})")


def _is_video(name: str, extensions: Iterable[str]) -> bool:
    return not name.startswith(".") and name.lower().endswith(tuple(extensions))


def _is_junk(name: str) -> bool:
    return name.lower() in _OS_JUNK or name.startswith("._")  # AppleDouble resource forks


def _warn_unlisted(folder: str, unlisted: List[str]) -> None:
    if unlisted:
        n = len(unlisted)
        shown = ", ".join(unlisted[:5]) + (", ..." if n > 5 else "")
        warnings.warn(f"{n} {'entry' if n == 1 else 'entries'} under {folder!r} not used (only files with a "
                      f"video suffix, see VIDEO_EXTENSIONS, directly inside a class folder are read): {shown}",
                      UnlistedFilesWarning, stacklevel=3)


class VideoFolder(_VideoClipDataset):
    """Videos in ``root/<split>/<class_name>/*.<ext>`` (classes = sorted folders).

    Every other entry under the split folder -- a file with another suffix, a hidden
    file, a sub-folder of a class folder, a file beside the class folders -- is
    not used and is named in one :class:`UnlistedFilesWarning` per construction
    (count and the first five, relative to the split folder; also kept in
    ``self.unlisted``).  Only OS metadata files (``.DS_Store``, ``Thumbs.db``,
    ``desktop.ini``, ``._*``) are ignored without a word.

    Args:
        root: dataset root; ``split=None`` means ``root`` itself holds the class folders.
        split: sub-folder such as ``"train"`` / ``"val"``.
        num_frames: clip length ``T``.
        size: output crop size.
        train: augmentation + one clip (True) or deterministic multi-view testing (False).
        num_clips: eval views along time.
        num_crops: eval views in space (1 = centre, 3 = along the long side).
        short_side: resize target before cropping (default ``size * 256 / 224``).
        classes: fixed class list (e.g. the train split's) so labels agree across splits.
        mean: normalisation mean per channel.
        std: normalisation std per channel.
        hflip: random horizontal flip in train mode.
        extensions: accepted file suffixes (case-insensitive; default :data:`VIDEO_EXTENSIONS`).
    """

    def __init__(self, root, split: Optional[str] = "train", num_frames: int = 8, size: int = 224,
                 train: bool = True, num_clips: int = 1, num_crops: int = 1,
                 short_side: Optional[int] = None, classes: Optional[Sequence[str]] = None,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 hflip: bool = True, extensions: Sequence[str] = VIDEO_EXTENSIONS) -> None:
        root = os.fspath(root)
        if not os.path.isdir(root):
            raise FileNotFoundError(f"video root folder not found: {root!r}")
        folder = root if split is None else os.path.join(root, split)
        if not os.path.isdir(folder):
            subs = sorted(e.name for e in os.scandir(root) if e.is_dir())
            raise FileNotFoundError(f"split folder not found: {folder!r} (sub-folders of root: {subs})")
        found = sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
        if not found:
            raise ValueError(f"no class folders in {folder!r}; expected {folder}/<class_name>/<video files>")
        if classes is None:
            classes = found
        else:
            classes = list(classes)
            unknown = [c for c in found if c not in classes]
            if unknown:
                raise ValueError(f"class folders {unknown} in {folder!r} are not in the given classes list")
        exts = tuple(e.lower() for e in extensions)
        samples = []
        unlisted = sorted(e.name + ("/" if e.is_dir() else "") for e in os.scandir(folder)
                          if not e.is_dir() and not _is_junk(e.name)
                          or e.is_dir() and e.name.startswith("."))
        for idx, name in enumerate(classes):
            cdir = os.path.join(folder, name)
            if os.path.isdir(cdir):
                entries = sorted(os.scandir(cdir), key=lambda e: e.name)
                samples.extend((e.path, idx) for e in entries if e.is_file() and _is_video(e.name, exts))
                unlisted.extend(f"{name}/{e.name}" + ("/" if e.is_dir() else "") for e in entries
                                if not (e.is_file() and _is_video(e.name, exts)) and not _is_junk(e.name))
        unlisted.sort()
        if not samples:
            other = f" (other entries: {', '.join(unlisted[:5])})" if unlisted else ""
            raise ValueError(f"no video files with extensions {list(exts)} under {folder!r}{other}")
        _warn_unlisted(folder, unlisted)
        self.root, self.split, self.unlisted = root, split, unlisted
        super().__init__(samples, classes, num_frames, size, train, num_clips, num_crops,
                         short_side, mean, std, hflip)


def _parse_list(list_file: str) -> List[Tuple[int, str, str]]:
    rows = []
    with open(list_file, newline="", encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if "," in line:
                fields = next(csv.reader([line]))
                fields = [",".join(fields[:-1]), fields[-1]] if len(fields) >= 2 else fields
            else:
                fields = line.rsplit(None, 1)
            fields = [f.strip() for f in fields]
            if len(fields) != 2 or not fields[0] or not fields[1]:
                raise ValueError(f"{list_file!r} line {lineno}: expected 'path,label' or 'path label', got {line!r}")
            if not rows and fields[0].lower() in ("path", "video", "filename") and fields[1].lower() in ("label", "class"):
                continue  # header
            rows.append((lineno, fields[0], fields[1]))
    if not rows:
        raise ValueError(f"video list {list_file!r} has no entries")
    return rows


def _is_int(text: str) -> bool:
    try:
        int(text)
        return True
    except ValueError:
        return False


class VideoList(_VideoClipDataset):
    """Videos listed in a CSV/TXT file of ``path,label`` or ``path label`` lines.

    Labels are ints or class names (blank lines and ``#`` comments are ignored,
    an optional ``path,label`` header is skipped).  Relative paths are resolved
    against ``root`` (default: the list file's folder).  Without ``classes``,
    names become ``sorted(set(names))`` and ints ``["0", ..., str(max)]``.
    Other arguments are as in :class:`VideoFolder`.
    """

    def __init__(self, list_file, root=None, classes: Optional[Sequence[str]] = None, num_frames: int = 8,
                 size: int = 224, train: bool = True, num_clips: int = 1, num_crops: int = 1,
                 short_side: Optional[int] = None, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, hflip: bool = True) -> None:
        list_file = os.fspath(list_file)
        if not os.path.isfile(list_file):
            raise FileNotFoundError(f"video list file not found: {list_file!r}")
        root = os.path.dirname(os.path.abspath(list_file)) if root is None else os.fspath(root)
        if not os.path.isdir(root):
            raise FileNotFoundError(f"video root folder not found: {root!r}")
        rows = _parse_list(list_file)
        ints = [_is_int(lab) for _, _, lab in rows]
        if classes is None:
            if all(ints):
                classes = [str(i) for i in range(max(int(lab) for _, _, lab in rows) + 1)]
            elif not any(ints):
                classes = sorted({lab for _, _, lab in rows})
            else:
                lineno = rows[ints.index(not ints[0])][0]
                raise ValueError(f"{list_file!r} line {lineno}: mixes integer labels and class names; "
                                 "pass classes=[...] to map names")
        classes = list(classes)
        lookup = {c: i for i, c in enumerate(classes)}
        samples = []
        for (lineno, path, lab), is_int in zip(rows, ints):
            if is_int:
                label = int(lab)
                if not 0 <= label < len(classes):
                    raise ValueError(f"{list_file!r} line {lineno}: label {label} out of range for {len(classes)} classes")
            elif lab in lookup:
                label = lookup[lab]
            else:
                raise ValueError(f"{list_file!r} line {lineno}: unknown class name {lab!r}")
            samples.append((path if os.path.isabs(path) else os.path.join(root, path), label))
        self.list_file, self.root = list_file, root
        super().__init__(samples, classes, num_frames, size, train, num_clips, num_crops,
                         short_side, mean, std, hflip)
