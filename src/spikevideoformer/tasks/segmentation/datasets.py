"""Video segmentation datasets: VSPW and Cityscapes sequences (see docs/segmentation_data.md).

Samples are ``(clip float32 [T, 3, H, W], masks int64 [T, H, W])`` (plus a ``meta``
dict when ``return_meta=True``); unlabeled pixels/frames hold ``IGNORE_INDEX`` (255).
Unreadable files make the affected sample be skipped with a warning (counted in
``dataset.skipped``); a wrong root/layout or nothing usable raises immediately.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .transforms import SegEvalTransform, SegTrainTransform, _randint

__all__ = [
    "IGNORE_INDEX", "CITYSCAPES_CLASSES", "CITYSCAPES_ID_TO_TRAINID", "cityscapes_labelids_to_trainids",
    "VSPWDataset", "CityscapesSequenceDataset",
]

IGNORE_INDEX = 255

CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)
# Standard Cityscapes labelId -> trainId; every id not listed maps to 255 (ignored).
CITYSCAPES_ID_TO_TRAINID = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
    23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}
_CS_LUT = np.full(256, IGNORE_INDEX, dtype=np.int64)
for _k, _v in CITYSCAPES_ID_TO_TRAINID.items():
    _CS_LUT[_k] = _v


def cityscapes_labelids_to_trainids(label_ids) -> np.ndarray:
    """Map a Cityscapes labelIds array (values 0..255) to the 19 train ids (others -> 255)."""
    a = np.asarray(label_ids)
    if a.min(initial=0) < 0 or a.max(initial=0) > 255:
        raise ValueError("Cityscapes labelIds must lie in [0, 255]")
    return _CS_LUT[a.astype(np.int64)]


class _BadFile(Exception):
    def __init__(self, path, err):
        super().__init__(f"{path}: {err}")
        self.path = str(path)


def _read_rgb(path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError, SyntaxError, EOFError) as e:  # missing, truncated, not an image
        raise _BadFile(path, e) from e


def _read_mask(path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "P", "I", "I;16"):
                raise ValueError(f"expected a single-channel label png, got mode {im.mode}")
            return np.array(im, dtype=np.int64)
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise _BadFile(path, e) from e


def _check_root(root, *subdirs) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} does not exist")
    for sub in subdirs:
        if not (root / sub).is_dir():
            raise FileNotFoundError(f"expected directory {root / sub} (see docs/segmentation_data.md)")
    return root


class _ClipSegDataset(Dataset):
    """Shared loading/skip/transform logic; subclasses fill ``self.samples`` and ``_load``."""

    num_classes: int = 0

    def __init__(self, num_frames, size, train, scale_range, transform, normalize, return_meta):
        if int(num_frames) < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        self.num_frames = int(num_frames)
        self.train = bool(train)
        self.return_meta = return_meta
        self.skipped = 0
        self.bad_files: List[str] = []
        self._bad = set()
        if transform is None:
            if self.train:
                transform = SegTrainTransform(crop_size=size, scale_range=scale_range, do_normalize=normalize)
            else:
                transform = SegEvalTransform(size=size, do_normalize=normalize)
        self.transform: Callable = transform

    def _skip(self, what: str, err: Exception) -> None:
        self.skipped += 1
        if isinstance(err, _BadFile):
            self.bad_files.append(err.path)
        warnings.warn(f"{type(self).__name__}: skipping {what}: {err} ({self.skipped} skipped so far)")

    def _verify(self) -> None:
        """Fully decode every sample once and drop the unreadable ones."""
        good = []
        for i in range(len(self.samples)):
            try:
                self._load(i)
                good.append(self.samples[i])
            except _BadFile as e:
                self._skip(f"sample {i}", e)
        self.samples = good
        self._require_samples()

    def _require_samples(self) -> None:
        if not self.samples:
            raise ValueError(f"{type(self).__name__}: no usable samples found ({self.skipped} skipped)")

    def _check_labels(self, m: np.ndarray, path) -> None:
        bad = (m >= self.num_classes) & (m != IGNORE_INDEX)
        if bad.any() or (m < 0).any():
            v = int(m[bad][0]) if bad.any() else int(m[m < 0][0])
            raise _BadFile(path, f"label value {v} outside [0, {self.num_classes}) and != {IGNORE_INDEX}")

    def _stack(self, frames: Sequence[np.ndarray], masks: Sequence[np.ndarray], paths) -> Tuple[torch.Tensor, torch.Tensor]:
        h, w = masks[-1].shape
        for f, m, p in zip(frames, masks, paths):
            if f.shape[:2] != (h, w) or m.shape != (h, w):
                raise _BadFile(p, f"size {f.shape[:2]} differs from label size {(h, w)}")
        clip = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div_(255.0)
        return clip, torch.from_numpy(np.stack(masks))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, idx: int):
        n = len(self)
        if not -n <= idx < n:
            raise IndexError(f"index {idx} out of range for {n} samples")
        idx %= n
        for k in range(n):
            j = (idx + k) % n
            if j in self._bad:
                continue
            try:
                clip, masks, meta = self._load(j)
            except _BadFile as e:
                self._bad.add(j)
                self._skip(f"sample {j}", e)
                continue
            clip, masks = self.transform(clip, masks)
            return (clip, masks, meta) if self.return_meta else (clip, masks)
        raise ValueError(f"{type(self).__name__}: every sample is unreadable ({self.skipped} skipped)")


class VSPWDataset(_ClipSegDataset):
    """VSPW: ``root/data/<video>/origin/*.jpg`` + ``root/data/<video>/mask/*.png``, split list ``root/<split>.txt``.

    Mask pngs hold class ids 0..123 (0 = "others") and 255 = ignore. Training draws
    ``samples_per_video`` random windows of ``num_frames`` frames (spaced ``frame_stride``)
    per video; evaluation tiles each video with consecutive windows (the last one is
    aligned to the video end, frames already covered get all-255 masks so every frame is
    scored once; ``meta['new']`` marks them). ``reduce_zero_label=True`` drops "others":
    0 -> 255 and ids shift down by one (123 classes).
    """

    NUM_CLASSES = 124

    def __init__(self, root, split: str = "train", num_frames: int = 4, size=None, train: Optional[bool] = None, *,
                 frame_stride: int = 1, scale_range=(0.5, 2.0), transform: Optional[Callable] = None,
                 normalize: bool = True, samples_per_video: int = 1, reduce_zero_label: bool = False,
                 return_meta: bool = False, verify: bool = False):
        super().__init__(num_frames, size, split == "train" if train is None else train,
                         scale_range, transform, normalize, return_meta)
        self.root = _check_root(root, "data")
        self.split = split
        self.frame_stride = max(1, int(frame_stride))
        self.reduce_zero_label = reduce_zero_label
        self.num_classes = self.NUM_CLASSES - 1 if reduce_zero_label else self.NUM_CLASSES
        list_file = self.root / f"{split}.txt"
        if not list_file.is_file():
            raise FileNotFoundError(f"split list {list_file} not found")
        names = [ln.strip() for ln in list_file.read_text().splitlines() if ln.strip()]
        if not names:
            raise ValueError(f"split list {list_file} is empty")
        self.videos: List[Tuple[str, List[Tuple[Path, Path]]]] = []
        for name in names:
            frames = self._index_video(name)
            if frames:
                self.videos.append((name, frames))
        if not self.videos:
            raise ValueError(f"VSPWDataset: no usable video in {list_file} ({self.skipped} skipped)")
        self.samples: List[Tuple[int, List[int], List[bool]]] = []
        for v, (_, frames) in enumerate(self.videos):
            if self.train:
                self.samples += [(v, [], [])] * int(samples_per_video)
            else:
                self.samples += self._eval_windows(v, len(frames))
        self._require_samples()
        if verify:
            self._verify()

    def _index_video(self, name: str) -> List[Tuple[Path, Path]]:
        vdir = self.root / "data" / name
        odir, mdir = vdir / "origin", vdir / "mask"
        if not odir.is_dir() or not mdir.is_dir():
            self._skip(f"video {name}", FileNotFoundError(f"missing {odir} or {mdir}"))
            return []
        imgs = sorted(p for p in odir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        out = []
        for p in imgs:
            m = mdir / (p.stem + ".png")
            if m.is_file():
                out.append((p, m))
            else:
                self._skip(f"frame {p}", FileNotFoundError(f"no mask {m}"))
        if not out:
            self._skip(f"video {name}", FileNotFoundError(f"no frame with a mask in {vdir}"))
        return out

    def _eval_windows(self, v: int, length: int):
        t = self.num_frames
        starts = list(range(0, max(length - t, 0) + 1, t))
        if starts[-1] + t < length:
            starts.append(length - t)
        wins, covered = [], -1
        for s in starts:
            idx = [min(s + i, length - 1) for i in range(t)]
            new, last = [], covered
            for i in idx:
                new.append(i > last)
                last = max(last, i)
            covered = last
            wins.append((v, idx, new))
        return wins

    def _load(self, j: int):
        v, idx, new = self.samples[j]
        name, frames = self.videos[v]
        if self.train:
            span = (self.num_frames - 1) * self.frame_stride + 1
            start = _randint(None, max(len(frames) - span, 0) + 1)
            idx = [min(start + i * self.frame_stride, len(frames) - 1) for i in range(self.num_frames)]
            new = [True] * self.num_frames
        imgs, masks = [], []
        for i, is_new in zip(idx, new):
            img_p, mask_p = frames[i]
            imgs.append(_read_rgb(img_p))
            m = _read_mask(mask_p)
            if self.reduce_zero_label:
                m = np.where(m == 0, IGNORE_INDEX, np.where(m == IGNORE_INDEX, IGNORE_INDEX, m - 1))
            self._check_labels(m, mask_p)
            masks.append(m if is_new else np.full_like(m, IGNORE_INDEX))
        clip, mask_t = self._stack(imgs, masks, [frames[i][0] for i in idx])
        meta = {"video": name, "frames": torch.tensor(idx), "new": torch.tensor(new)}
        return clip, mask_t, meta


class CityscapesSequenceDataset(_ClipSegDataset):
    """Cityscapes video clips ending at each annotated frame (20th of every 30-frame snippet).

    Frames: ``root/leftImg8bit_sequence/<split>/<city>/<city>_<seq>_<frame:06d>_leftImg8bit.png``;
    labels: ``root/gtFine/<split>/<city>/<city>_<seq>_<frame:06d>_gtFine_labelIds.png``.
    Returns the ``num_frames`` frames (spaced ``frame_stride``) ending at the annotated one;
    masks are 255 everywhere except the last frame, which holds the 19 train ids.
    """

    CLASSES = CITYSCAPES_CLASSES
    NUM_CLASSES = 19

    def __init__(self, root, split: str = "train", num_frames: int = 4, size=None, train: Optional[bool] = None, *,
                 frame_stride: int = 1, scale_range=(0.5, 2.0), transform: Optional[Callable] = None,
                 normalize: bool = True, return_meta: bool = False, verify: bool = False):
        super().__init__(num_frames, size, split == "train" if train is None else train,
                         scale_range, transform, normalize, return_meta)
        self.root = _check_root(root, f"gtFine/{split}", f"leftImg8bit_sequence/{split}")
        self.split = split
        self.num_classes = self.NUM_CLASSES
        self.frame_stride = max(1, int(frame_stride))
        self.samples: List[Tuple[Path, List[Path], List[int]]] = []
        suffix = "_gtFine_labelIds.png"
        gt_root = self.root / "gtFine" / split
        for city_dir in sorted(p for p in gt_root.iterdir() if p.is_dir()):
            for gt in sorted(city_dir.glob("*" + suffix)):
                self._add_sample(gt, gt.name[: -len(suffix)])
        if not self.samples and self.skipped == 0:
            raise FileNotFoundError(f"no *{suffix} files under {gt_root}")
        self._require_samples()
        if verify:
            self._verify()

    def _add_sample(self, gt: Path, stem: str) -> None:
        parts = stem.rsplit("_", 2)
        if len(parts) != 3 or not parts[2].isdigit():
            self._skip(f"label {gt}", ValueError("name is not <city>_<seq>_<frame>_gtFine_labelIds.png"))
            return
        city, seq, frame = parts[0], parts[1], int(parts[2])
        seq_dir = self.root / "leftImg8bit_sequence" / self.split / city
        ids = [max(frame - (self.num_frames - 1 - i) * self.frame_stride, 0) for i in range(self.num_frames)]
        paths = [seq_dir / f"{city}_{seq}_{i:06d}_leftImg8bit.png" for i in ids]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            self._skip(f"label {gt.name}", _BadFile(missing[0], f"frame missing ({len(missing)} of {len(paths)})"))
            return
        self.samples.append((gt, paths, ids))

    @property
    def class_names(self) -> Tuple[str, ...]:
        return self.CLASSES

    def _load(self, j: int):
        gt, paths, ids = self.samples[j]
        label = cityscapes_labelids_to_trainids(_read_mask(gt))
        imgs = [_read_rgb(p) for p in paths]
        blank = np.full_like(label, IGNORE_INDEX)
        masks = [blank] * (len(imgs) - 1) + [label]
        clip, mask_t = self._stack(imgs, masks, paths)
        meta = {"label": str(gt), "frames": torch.tensor(ids)}
        return clip, mask_t, meta
