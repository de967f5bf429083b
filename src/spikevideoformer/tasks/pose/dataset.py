"""On-disk pose-tracking dataset (format: ``docs/pose_data_format.md``).

Layout::

    root/<split>/<sequence_name>/
        video.mp4                      # or: frames/000000.png, 000001.png, ...
        annotations.npz                # joints3d [N,24,3] and/or pose [N,72] (+ betas, transl)

:class:`PoseSequenceDataset` cuts every sequence into windows of ``T``
frames and returns ``(clip [T, C, size, size] float32 in [0,1], target)`` with
the same target keys as :class:`~.synthetic.SyntheticPoseVideos`
(``joints``, ``pose_6d``, ``betas``, ``transl``) plus ``has_joints``,
``has_smpl`` (bool flags; missing arrays are zero-filled), ``seq_index`` and
``start`` (frame index of the window start).
"""
from __future__ import annotations

import glob
import os
import warnings
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ...data.video_io import count_frames, read_video
from .rotations import axis_angle_to_matrix, matrix_to_rot6d
from .skeleton import NUM_JOINTS, mirror_joints, mirror_rotmats

__all__ = ["PoseSequenceDataset", "load_annotations", "read_image", "resize_clip", "IMAGE_EXTS", "VIDEO_NAMES"]

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEO_NAMES = ("video.mp4", "video.avi", "video.mkv", "video.mov")


# ----------------------------------------------------------------------------- annotations
def load_annotations(path: str) -> Dict[str, np.ndarray]:
    """Load and validate ``annotations.npz``.

    Returns a dict with ``n`` (frame count, int) and float32 arrays
    ``joints3d [N,24,3]`` or None, ``rotmats [N,24,3,3]`` or None,
    ``betas [N,10]`` and ``transl [N,3]`` (zeros when absent).  Raises
    ``ValueError`` (or an I/O error) for anything malformed.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: np.asarray(z[k]) for k in z.files}
    except Exception as e:  # not a zip / truncated / pickled objects ...
        raise ValueError(f"cannot read {path} as an .npz archive: {e}") from e
    joints = data.get("joints3d")
    pose = data.get("pose")
    if joints is None and pose is None:
        raise ValueError(f"{path}: needs 'joints3d' and/or 'pose' (found keys {sorted(data)})")
    n = None
    if joints is not None:
        joints = joints.astype(np.float32)
        if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3):
            raise ValueError(f"{path}: joints3d must be [N,24,3], got {joints.shape}")
        n = joints.shape[0]
    rotmats = None
    if pose is not None:
        pose = pose.astype(np.float32)
        if pose.ndim == 2 and pose.shape[1] == NUM_JOINTS * 3:
            pose = pose.reshape(-1, NUM_JOINTS, 3)
        if pose.ndim == 3 and pose.shape[1:] == (NUM_JOINTS, 3):
            rotmats = axis_angle_to_matrix(torch.from_numpy(pose).double()).float().numpy()
        elif pose.ndim == 4 and pose.shape[1:] == (NUM_JOINTS, 3, 3):
            rotmats = pose
        else:
            raise ValueError(f"{path}: pose must be [N,72], [N,24,3] or [N,24,3,3], got {pose.shape}")
        if n is not None and rotmats.shape[0] != n:
            raise ValueError(f"{path}: pose has {rotmats.shape[0]} frames but joints3d has {n}")
        n = rotmats.shape[0]
    betas = data.get("betas")
    if betas is None:
        betas = np.zeros((n, 10), np.float32)
    else:
        betas = betas.astype(np.float32)
        if betas.ndim == 1:
            betas = np.broadcast_to(betas[None], (n, betas.shape[0]))
        if betas.ndim != 2 or betas.shape[0] != n:
            raise ValueError(f"{path}: betas must be [10] or [N,10], got {betas.shape}")
        k = betas.shape[1]
        betas = betas[:, :10] if k >= 10 else np.concatenate([betas, np.zeros((n, 10 - k), np.float32)], 1)
    transl = data.get("transl")
    if transl is None:
        transl = np.zeros((n, 3), np.float32)
    else:
        transl = transl.astype(np.float32)
        if transl.shape != (n, 3):
            raise ValueError(f"{path}: transl must be [N,3] with N={n}, got {transl.shape}")
    for name, arr in (("joints3d", joints), ("pose", rotmats), ("betas", betas), ("transl", transl)):
        if arr is not None and not np.isfinite(arr).all():
            raise ValueError(f"{path}: {name} contains NaN/inf")
    return {"n": int(n), "joints3d": joints, "rotmats": rotmats,
            "betas": np.ascontiguousarray(betas), "transl": transl}


# ----------------------------------------------------------------------------- frames
def read_image(path: str) -> np.ndarray:
    """Read an image file as float32 ``[H, W, 3]`` in ``[0, 1]`` (grey replicated to 3 channels)."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        mode = im.mode
        if mode.startswith("I;16"):
            a = np.asarray(im).astype(np.float32) / 65535.0
        elif mode in ("I", "F"):
            a = np.asarray(im).astype(np.float32)
            m = float(a.max()) if a.size else 0.0
            a = a / (65535.0 if m > 255 else 255.0 if m > 1 else 1.0)
        else:
            a = np.asarray(im.convert("L" if mode in ("L", "1", "LA") else "RGB"), dtype=np.float32) / 255.0
        if a.ndim == 2:
            a = np.repeat(np.clip(a, 0.0, 1.0)[..., None], 3, axis=-1)
    return a


def _video_frame_count(path: str) -> int:
    """Frame count from demuxing the whole file; truncated/corrupt files raise ``VideoDecodeError``."""
    return count_frames(path)


def _read_video(path: str, start: int, count: int) -> np.ndarray:
    """Decode frames ``[start, start+count)`` as uint8 ``[count, H, W, 3]`` (see ``read_video``)."""
    return read_video(path, indices=list(range(start, start + count))).numpy()


def resize_clip(clip: torch.Tensor, size: int, mode: str = "pad") -> torch.Tensor:
    """Resize ``[T, C, H, W]`` to ``[T, C, size, size]``.

    ``mode``: ``"pad"`` (keep aspect ratio, zero-pad to a square - default),
    ``"crop"`` (keep aspect ratio, centre crop) or ``"stretch"``.
    """
    T, C, H, W = clip.shape
    if mode == "stretch" or H == W:
        if (H, W) == (size, size):
            return clip
        return F.interpolate(clip, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    if mode not in ("pad", "crop"):
        raise ValueError(f"resize mode must be pad/crop/stretch, got {mode!r}")
    s = size / max(H, W) if mode == "pad" else size / min(H, W)
    h, w = max(1, round(H * s)), max(1, round(W * s))
    x = F.interpolate(clip, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    if mode == "pad":
        top, left = (size - h) // 2, (size - w) // 2
        return F.pad(x, (left, size - w - left, top, size - h - top))
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]


# ----------------------------------------------------------------------------- dataset
class PoseSequenceDataset(Dataset):
    """Windows of ``num_frames`` frames cut from every sequence under ``root/split``.

    Args:
        root: dataset root (contains one folder per split).
        split: split folder name, e.g. ``"train"`` / ``"test"``.
        num_frames: window length ``T`` (the paper uses 32).
        stride: window step; default ``num_frames`` (non-overlapping).  Frames
            after the last full window are not used.
        size: output height = width (see ``resize_mode``).
        train: enables augmentation (random horizontal flip with
            ``flip_prob``, default 0.5); default ``split == "train"``.
        channels: 3 (RGB; grey frames replicated) or 1 (mean of RGB).
        resize_mode: ``"pad"`` | ``"crop"`` | ``"stretch"``, see :func:`resize_clip`.
        body_model: optional ``model(pose_rotmats, betas, transl) -> joints``
            used to fill ``joints`` when a sequence has SMPL ``pose`` but no
            ``joints3d``.
        flip_prob: probability of a horizontal flip when ``train``.

    Broken sequences (missing/corrupt ``annotations.npz``, missing/corrupt
    frames, a truncated video -- checked with the same rule as
    :func:`~spikevideoformer.data.video_io.read_video` -- fewer than ``T``
    frames) are skipped with a warning and listed in
    ``self.skipped`` as ``(sequence_dir, reason)``; a ``ValueError`` is raised
    when no window remains.
    """

    def __init__(self, root: str, split: str = "train", num_frames: int = 32,
                 stride: Optional[int] = None, size: int = 224, train: Optional[bool] = None,
                 channels: int = 3, resize_mode: str = "pad", body_model=None,
                 flip_prob: float = 0.5):
        self.root = os.fspath(root)
        self.split = split
        self.num_frames = int(num_frames)
        self.stride = int(stride) if stride else self.num_frames
        if self.num_frames < 1 or self.stride < 1:
            raise ValueError("num_frames and stride must be >= 1")
        self.size = int(size)
        self.train = (split == "train") if train is None else bool(train)
        if channels not in (1, 3):
            raise ValueError("channels must be 1 or 3")
        self.channels = channels
        self.resize_mode = resize_mode
        self.body_model = body_model
        self.flip_prob = float(flip_prob) if self.train else 0.0
        split_dir = os.path.join(self.root, split)
        if not os.path.isdir(split_dir):
            raise FileNotFoundError(f"split folder not found: {split_dir} (expected root/<split>/<sequence>/)")
        self.sequences: List[dict] = []
        self.skipped: List[Tuple[str, str]] = []
        self.windows: List[Tuple[int, int]] = []
        for name in sorted(os.listdir(split_dir)):
            seq_dir = os.path.join(split_dir, name)
            if not os.path.isdir(seq_dir):
                continue
            try:
                seq = self._scan(seq_dir)
            except Exception as e:  # noqa: BLE001 - any failure skips the sequence
                reason = f"{type(e).__name__}: {e}"
                warnings.warn(f"PoseSequenceDataset: skipping {seq_dir}: {reason}", RuntimeWarning, stacklevel=2)
                self.skipped.append((seq_dir, reason))
                continue
            k = len(self.sequences)
            self.sequences.append(seq)
            for st in range(0, seq["n"] - self.num_frames + 1, self.stride):
                self.windows.append((k, st))
        if not self.windows:
            raise ValueError(
                f"PoseSequenceDataset: no usable {self.num_frames}-frame window under {split_dir} "
                f"({len(self.sequences)} usable sequences, {len(self.skipped)} skipped: "
                + "; ".join(f"{os.path.basename(d)}: {r}" for d, r in self.skipped[:5]) + ")"
            )

    # -- scanning
    def _scan(self, seq_dir: str) -> dict:
        ann_path = os.path.join(seq_dir, "annotations.npz")
        if not os.path.isfile(ann_path):
            raise FileNotFoundError(f"missing {ann_path}")
        ann = load_annotations(ann_path)
        video = next((os.path.join(seq_dir, v) for v in VIDEO_NAMES if os.path.isfile(os.path.join(seq_dir, v))), None)
        frames = None
        if video is not None:
            try:
                n_frames = _video_frame_count(video)
            except Exception as e:
                raise ValueError(f"cannot read video {video}: {e}") from e
        else:
            fdir = os.path.join(seq_dir, "frames")
            frames = sorted(
                glob.glob(os.path.join(glob.escape(fdir), "*"))
            ) if os.path.isdir(fdir) else []
            frames = [f for f in frames if f.lower().endswith(IMAGE_EXTS)]
            if not frames:
                raise FileNotFoundError(f"no frames: neither {os.path.join(seq_dir, 'video.mp4')} nor images in {fdir}")
            n_frames = len(frames)
            try:
                read_image(frames[0])
            except Exception as e:
                raise ValueError(f"cannot read frame {frames[0]}: {e}") from e
        if n_frames <= 0:
            raise ValueError(f"{video or seq_dir}: no frames")
        n = min(n_frames, ann["n"])
        if n_frames != ann["n"]:
            warnings.warn(
                f"PoseSequenceDataset: {seq_dir}: {n_frames} frames but {ann['n']} annotated; using the first {n}",
                RuntimeWarning, stacklevel=3,
            )
        if n < self.num_frames:
            raise ValueError(f"only {n} frames, fewer than num_frames={self.num_frames}")
        return {"dir": seq_dir, "name": os.path.basename(seq_dir), "n": n, "video": video, "frames": frames, "ann": ann}

    def __len__(self) -> int:
        return len(self.windows)

    # -- loading
    def _load_frames(self, seq: dict, start: int) -> torch.Tensor:
        T = self.num_frames
        if seq["video"] is not None:
            arr = torch.from_numpy(_read_video(seq["video"], start, T)).float().div_(255.0)
        else:
            imgs = []
            for p in seq["frames"][start : start + T]:
                try:
                    imgs.append(read_image(p))
                except Exception as e:
                    raise RuntimeError(f"cannot read frame {p}: {e}") from e
            shapes = {a.shape for a in imgs}
            if len(shapes) != 1:
                raise RuntimeError(f"{seq['dir']}: frames {start}..{start + T - 1} have different sizes {shapes}")
            arr = torch.from_numpy(np.stack(imgs))
        clip = arr.permute(0, 3, 1, 2).contiguous()  # [T, 3, H, W]
        clip = resize_clip(clip, self.size, self.resize_mode).clamp_(0.0, 1.0)
        if self.channels == 1:
            clip = clip.mean(1, keepdim=True)
        return clip

    def _target(self, seq: dict, start: int) -> Dict[str, torch.Tensor]:
        sl = slice(start, start + self.num_frames)
        ann = seq["ann"]
        T = self.num_frames
        transl = torch.from_numpy(ann["transl"][sl].copy())
        betas = torch.from_numpy(ann["betas"][sl].mean(0))
        if ann["rotmats"] is not None:
            rotmats = torch.from_numpy(ann["rotmats"][sl].copy())
            has_smpl = True
        else:
            rotmats = torch.eye(3).expand(T, NUM_JOINTS, 3, 3).clone()
            has_smpl = False
        if ann["joints3d"] is not None:
            joints = torch.from_numpy(ann["joints3d"][sl].copy())
            has_joints = True
        elif has_smpl and self.body_model is not None:
            with torch.no_grad():
                joints = self.body_model(rotmats, betas.expand(T, 10), transl).float()
            has_joints = True
        else:
            joints = torch.zeros(T, NUM_JOINTS, 3)
            has_joints = False
        return {"joints": joints, "rotmats": rotmats, "betas": betas, "transl": transl,
                "has_joints": torch.tensor(has_joints), "has_smpl": torch.tensor(has_smpl)}

    def __getitem__(self, index: int):
        k, start = self.windows[index]
        seq = self.sequences[k]
        clip = self._load_frames(seq, start)
        tgt = self._target(seq, start)
        if self.flip_prob > 0 and float(torch.rand(())) < self.flip_prob:
            clip = clip.flip(-1)
            tgt["joints"] = mirror_joints(tgt["joints"])
            tgt["rotmats"] = mirror_rotmats(tgt["rotmats"])
            tgt["transl"] = tgt["transl"] * tgt["transl"].new_tensor([-1.0, 1.0, 1.0])
        rotmats = tgt.pop("rotmats")
        target = {
            "joints": tgt["joints"].float(),
            "pose_6d": matrix_to_rot6d(rotmats).float(),
            "betas": tgt["betas"].float(),
            "transl": tgt["transl"].float(),
            "has_joints": tgt["has_joints"],
            "has_smpl": tgt["has_smpl"],
            "seq_index": torch.tensor(k, dtype=torch.long),
            "start": torch.tensor(start, dtype=torch.long),
        }
        return clip.float(), target
