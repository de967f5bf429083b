"""Example clips of the DigitRelay task, one row per class, as a PNG for the docs.

Each row is one clip (T = 8 frames, 64x64); each frame is titled with the quadrant of the active
(lit) digit. Clips come from the test split (seed 0), so the figure is reproducible.

    python benchmarks/digit_relay_examples.py                       # -> docs/img/digit_relay.png
    python benchmarks/digit_relay_examples.py --out /tmp/relay.png --size 96 --frames 12
"""
from __future__ import annotations

import argparse
from pathlib import Path

from spikevideoformer.data.digit_relay import QUADRANTS, DigitRelay

OUT = Path(__file__).resolve().parents[1] / "docs" / "img" / "digit_relay.png"


def plot_examples(out: Path, size: int = 64, frames: int = 8, seed: int = 0) -> Path:
    """One clip per class (the first of each class in the test split) as a grid of frames."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ds = DigitRelay("test", num_samples=8, num_frames=frames, size=size, seed=seed)
    k = ds.num_classes
    fig, axes = plt.subplots(k, frames, figsize=(0.95 * frames + 1.2, 1.05 * k), squeeze=False)
    for row in range(k):
        params = ds.clip_params(row)  # label = index % num_classes
        clip = ds.render(params)  # [T, C, H, W]
        hopper = {t: QUADRANTS[q] for q, ts in params["hop_frames"].items() for t in ts}
        for t in range(frames):
            ax = axes[row, t]
            ax.imshow(clip[t].transpose(1, 2, 0), interpolation="nearest")
            ax.axhline(size / 2 - 0.5, color="0.3", lw=0.5)
            ax.axvline(size / 2 - 0.5, color="0.3", lw=0.5)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"t={t}" + (f" {hopper[t]}" if t in hopper else ""), fontsize=7, pad=2)
        axes[row, 0].set_ylabel(ds.classes[row], fontsize=8)
    fig.suptitle("DigitRelay: the lit digit goes round the four quadrants; the class is its route",
                 fontsize=9)
    fig.tight_layout(pad=0.3)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(plot_examples(args.out, args.size, args.frames, args.seed))


if __name__ == "__main__":
    main()
