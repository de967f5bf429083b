"""DigitRelay: an embedded video task whose label is the *order* of events at four places.

Four real handwritten digits (``sklearn.datasets.load_digits``, as in :mod:`.moving_digits`) rest
near the centres of the four quadrants of a black canvas. In turn, one digit is *active*; the
activity is passed on like a relay baton, and the class is the route it takes through the
quadrants (TL, TR, BR, BL as seen on screen):

====================  ===================================================
``clockwise``         TL → TR → BR → BL → TL ...
``counterclockwise``  TL → BL → BR → TR → TL ...
``rows``              TL → TR → BL → BR (reading order), or the reverse
``columns``           TL → BL → TR → BR, or the reverse
====================  ===================================================

(``num_classes=2`` keeps only clockwise vs counterclockwise, a time-reversal pair.) To name the
class a model has to relate *when* something happened in one quadrant to when something
happened in another.

Two renderings of "active" (``event``):

* ``"flash"`` (default): every digit is drawn at ``dim`` brightness, the active one at full
  brightness, in place. With the default ``gap = 1`` the baton moves on every frame, so a clip of
  T = 8 frames holds two periods of the route: 8 handovers to learn from.
* ``"hop"``: the active digit is drawn ``hop`` pixels away from its rest position (in a random
  direction of its own) for one frame. With ``gap=None`` the four hops are spread over one
  period of T frames (frames ``floor(k * T / 4)``), each followed by rest frames: the first
  design of this task, which svf_tiny did not learn within an ablation budget (docs/ablations.md).

**Why no single frame, frame average or per-frame model can tell the class (exact, by
construction).** The activity is periodic with period ``P`` (``4 * gap``, or ``T`` with
``gap=None``); the four handovers occupy the slots ``0, gap, 2 gap, 3 gap`` of a period (other
slots show all digits at rest); a clip holds ``T / P`` whole periods and starts at a uniformly
random phase. Digits, rest positions, hop vectors and colours are drawn independently of the
label; the class only decides *which* digit is active in which slot. So for the same scene every
class yields the same *multiset* of frames, in a different order. Hence

* frame ``t`` is a uniformly random member of that multiset (random phase): its distribution is
  the same for every class, for every ``t``;
* the frame average is a function of the multiset: identical for every class;
* any model that processes frames independently and pools over time -- e.g. spatial-only
  attention with no temporal state, whose logits are a time average of per-frame outputs -- is a
  function of the multiset, so it is at chance. Only the order of the frames carries the label.

(Monotone relations such as "the digits approach / recede" cannot have this property: the mean
distance in the first frame would differ between the classes.)

Clips are generated on the fly and deterministically from ``(seed, split, index)``; nothing is
stored. Splits use disjoint subsets of the 1797 digit images (the fixed 70/15/15 split of
:func:`.moving_digits.digit_split_indices`) and disjoint random streams.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from .moving_digits import _SPLIT_IDS, _sprites, digit_split_indices, split_and_size
from .transforms import _pos_int

__all__ = ["DigitRelay", "RELAY_CLASSES", "QUADRANTS"]

QUADRANTS = ("TL", "TR", "BR", "BL")  # clockwise on screen; index = quadrant id
# class name -> cyclic routes (quadrant ids); a class with two routes takes either direction
_ROUTES = {
    "clockwise": ((0, 1, 2, 3),),
    "counterclockwise": ((0, 3, 2, 1),),
    "rows": ((0, 1, 3, 2), (0, 2, 3, 1)),
    "columns": ((0, 3, 1, 2), (0, 2, 1, 3)),
}
RELAY_CLASSES = {2: ["clockwise", "counterclockwise"], 4: list(_ROUTES)}
# RGB colours a digit may take (drawn per digit, independently of the label)
_PALETTE = np.array([(1.0, 1.0, 1.0), (1.0, 0.35, 0.35), (0.35, 1.0, 0.35), (0.45, 0.6, 1.0),
                     (1.0, 1.0, 0.3), (1.0, 0.4, 1.0), (0.3, 1.0, 1.0)], dtype=np.float32)


def _paste(canvas: np.ndarray, sprite: np.ndarray, y: int, x: int) -> None:
    """Write ``sprite`` into ``canvas`` with its top-left corner at ``(y, x)``, clipped to the canvas."""
    h, w = sprite.shape
    y0, x0 = max(y, 0), max(x, 0)
    y1, x1 = min(y + h, canvas.shape[0]), min(x + w, canvas.shape[1])
    if y0 < y1 and x0 < x1:
        canvas[y0:y1, x0:x1] = sprite[y0 - y:y1 - y, x0 - x:x1 - x]


class DigitRelay(Dataset):
    """Deterministic relay clips: the four digits are active in turn; the class is the route.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        num_samples: number of clips (default 5000 for train, 1000 otherwise).
        num_frames: frames per clip ``T`` (>= 8; a multiple of ``4 * gap``).
        size: canvas height and width in pixels (>= 32, even).
        num_classes: 4 (clockwise, counterclockwise, rows, columns) or 2 (the first two).
        seed: base seed; ``(seed, split, index)`` fully determines a clip.
        channels: 3 (each digit in a random palette colour) or 1 (white digits).
        digit_scale: digit sprite size in pixels (default ``size / 4``).
        hop: hop distance in pixels for ``event="hop"`` (default ``size / 8``).
        jitter: a digit rests within +-``jitter`` pixels of its quadrant's centre. With
            ``event="hop"``, small values make a hop visible inside one frame (a digit out of
            place): an MLP on 8x8-pooled raw frames (3000 clips) reaches 1.00 / 0.97 / 0.56 /
            0.25 held-out accuracy at jitter 0 / 2 / 4 / 8 (default 2).
        gap: frames between two handovers (default 1: the baton moves every frame); ``None``
            spreads the four handovers over one period of ``T`` frames.
        event: ``"flash"`` (default; the active digit lights up) or ``"hop"`` (it jumps).
        dim: brightness of the digits at rest with ``event="flash"``, in [0, 1).

    ``ds[i]`` returns ``(clip, label)`` with ``clip`` float32 ``[num_frames, channels, size, size]``
    in [0, 1] (overlapping digits: the brighter pixel wins) and ``label`` an int. Labels are
    exactly balanced (``label = index % num_classes``).
    """

    def __init__(self, split: str = "train", num_samples: Optional[int] = None, num_frames: int = 8,
                 size: int = 64, num_classes: int = 4, seed: int = 0, channels: int = 3,
                 digit_scale: Optional[int] = None, hop: Optional[int] = None, jitter: int = 2,
                 gap: Optional[int] = 1, event: str = "flash", dim: float = 0.35) -> None:
        self.split, self.num_samples = split_and_size(split, num_samples)
        self.num_frames = _pos_int("num_frames", num_frames, 8)
        self.size = _pos_int("size", size, 32)
        if self.size % 2:
            raise ValueError(f"size must be even (four equal quadrants), got {self.size}")
        if isinstance(num_classes, bool) or num_classes not in RELAY_CLASSES:
            raise ValueError(f"num_classes must be 2 or 4, got {num_classes!r}")
        self.num_classes = int(num_classes)
        if isinstance(channels, bool) or channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels!r}")
        self.channels = int(channels)
        self.seed = _pos_int("seed", seed, 0)
        half = self.size // 2
        self.digit_scale = _pos_int("digit_scale", max(4, self.size // 4) if digit_scale is None
                                    else digit_scale, 4)
        if self.digit_scale > half:
            raise ValueError(f"digit_scale ({self.digit_scale}) must be <= size / 2 ({half}): "
                             "each digit rests inside its quadrant")
        self.hop = _pos_int("hop", max(2, self.size // 8) if hop is None else hop, 1)
        if self.hop >= half:
            raise ValueError(f"hop ({self.hop}) must be < size / 2 ({half}): a hop stays near its quadrant")
        self.jitter = _pos_int("jitter", jitter, 0)
        if self.jitter > (half - self.digit_scale) // 2:
            raise ValueError(f"jitter ({self.jitter}) must be <= {(half - self.digit_scale) // 2} "
                             "(a digit rests inside its quadrant)")
        if event not in ("hop", "flash"):
            raise ValueError(f"event must be 'hop' or 'flash', got {event!r}")
        if isinstance(dim, bool) or not isinstance(dim, (int, float)) or not 0.0 <= dim < 1.0:
            raise ValueError(f"dim must be a number in [0, 1), got {dim!r}")
        self.event, self.dim = event, float(dim)
        self.classes = list(RELAY_CLASSES[self.num_classes])
        self.digit_indices = digit_split_indices(split)
        # slots of the four hops within one period; the clip is a whole number of periods
        if gap is None:
            self.gap, self.period = None, self.num_frames
            self.hop_slots = tuple(k * self.num_frames // 4 for k in range(4))
        else:
            self.gap = _pos_int("gap", gap, 1)
            self.period = 4 * self.gap
            if self.num_frames % self.period:
                raise ValueError(f"num_frames ({self.num_frames}) must be a multiple of 4 * gap "
                                 f"({self.period}): a clip holds whole periods of the relay")
            self.hop_slots = tuple(k * self.gap for k in range(4))

    def __len__(self) -> int:
        return self.num_samples

    def _rng(self, index: int) -> np.random.Generator:
        # SeedSequence over (seed, split, index): disjoint, reproducible streams.
        return np.random.default_rng([self.seed, _SPLIT_IDS[self.split], index, 0x4E1A7])

    def clip_params(self, index: int) -> dict:
        """The random parameters of clip ``index``: digits, rest positions, hop vectors, colours
        (all label-independent), the route and the phase, and ``hop_frames`` (quadrant id ->
        the clip frame in which that digit hops)."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an int, got {type(index).__name__}")
        if not -self.num_samples <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for DigitRelay of length {self.num_samples}")
        index = int(index) % self.num_samples
        rng = self._rng(index)
        label = index % self.num_classes
        half, d = self.size // 2, self.digit_scale
        # the scene: drawn the same way for every class
        digits = rng.choice(self.digit_indices, size=4, replace=False)
        offsets = (half - d) // 2 + rng.integers(-self.jitter, self.jitter + 1, size=(4, 2))
        corners = np.array([(0, 0), (0, half), (half, half), (half, 0)])  # TL, TR, BR, BL
        angles = rng.uniform(0.0, 2.0 * np.pi, size=4)
        hops = np.rint(self.hop * np.stack([np.sin(angles), np.cos(angles)], 1)).astype(np.int64)
        colours = rng.integers(0, len(_PALETTE), size=4)
        phase = int(rng.integers(0, self.period))
        # the label: which quadrant hops in which slot
        routes = _ROUTES[self.classes[label]]
        route = routes[int(rng.integers(0, len(routes)))]
        hop_frames = self.hop_frames(route, phase)
        return dict(index=index, label=label, digits=[int(v) for v in digits],
                    rest=(corners + offsets).tolist(), hops=hops.tolist(),
                    colours=[int(c) for c in colours], route=list(route), phase=phase,
                    hop_frames=hop_frames)

    def hop_frames(self, route, phase: int) -> dict[int, list[int]]:
        """Quadrant id -> the clip frames in which its digit is active, for a route (quadrant ids
        in slot order) and a phase in ``[0, period)``."""
        P = self.period
        return {q: [(slot - phase) % P + k * P for k in range(self.num_frames // P)]
                for q, slot in zip(route, self.hop_slots)}

    def render(self, params: dict) -> np.ndarray:
        """Render clip parameters to float32 ``[T, channels, size, size]`` in [0, 1]."""
        s, T = self.size, self.num_frames
        sprites = _sprites(self.digit_scale)
        colours = _PALETTE[params["colours"]] if self.channels == 3 else np.ones((4, 1), np.float32)
        layers = np.zeros((4, 2, self.channels, s, s), dtype=np.float32)  # [digit, rest/hop, C, H, W]
        for q in range(4):
            (y, x), (dy, dx) = params["rest"][q], params["hops"][q]
            for k, (py, px) in enumerate(((y, x), (y + dy, x + dx))):
                grey = np.zeros((s, s), dtype=np.float32)
                _paste(grey, sprites[params["digits"][q]], py, px)
                layers[q, k] = grey[None] * colours[q][:, None, None]
        if self.event == "flash":  # at rest every digit is dim; the active one lights up in place
            layers[:, 1] = layers[:, 0]
            layers[:, 0] *= self.dim
        rest = layers[:, 0].max(axis=0)  # [C, H, W]
        clip = np.repeat(rest[None], T, axis=0)  # [T, C, H, W]
        for q, frames in params["hop_frames"].items():
            others = [layers[o, 0] for o in range(4) if o != q]
            for t in frames:
                clip[t] = np.maximum.reduce(others + [layers[q, 1]])
        return clip

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, int]:
        params = self.clip_params(index)
        return torch.from_numpy(self.render(params)), params["label"]

    def __repr__(self) -> str:
        return (f"DigitRelay(split={self.split!r}, num_samples={self.num_samples}, "
                f"num_frames={self.num_frames}, size={self.size}, num_classes={self.num_classes}, "
                f"seed={self.seed}, channels={self.channels}, digit_scale={self.digit_scale}, "
                f"event={self.event!r}, gap={self.gap}, hop={self.hop})")
