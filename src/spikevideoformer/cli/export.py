"""``svf export``: write a trained model in a deployable form (docs/integer.md, docs/deploy.md).

    svf export runs/demo/best --format integer --out svf_int8             # graph.json + tensors.npz
    svf export runs/demo/best --format integer --weight-bits 16 --out svf_int16
    svf export runs/demo/best --format torch_export --out exported         # exported/model.pt2
    svf export weights.pth --format onnx --size 224 --frames 8 --out exported

``integer``: the integer-only network of ``deploy.integer`` for uint8 clips ``[T, H, W, C]`` of
the checkpoint's frame size, run by ``python .../deploy/integer/runner.py OUT clip.npy``
(NumPy only). ``torch_export`` / ``onnx``: ``deploy.export_model`` (fixed T and size).
"""
from __future__ import annotations

import argparse
from pathlib import Path

FORMATS = ("integer", "torch_export", "onnx")
# embedded datasets whose clips are fed in [0, 1], without ImageNet normalisation
UNNORMALISED = ("moving_digits", "digit_relay")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a classification checkpoint folder (model.safetensors + "
                                      "meta.json), or a .safetensors/.pth state_dict in the official layout")
    p.add_argument("--format", default="integer", choices=FORMATS)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--weight-bits", type=int, default=8, help="integer weight width (default 8)")
    p.add_argument("--membrane-frac-bits", type=int, default=4,
                   help="fraction bits of the integer membranes (default 4)")
    p.add_argument("--size", type=int, default=None,
                   help="frame height and width (default: the checkpoint's, else 224)")
    p.add_argument("--frames", type=int, default=None,
                   help="clip length T for torch_export/onnx (default: the checkpoint's, else 8)")


def _load(path: Path):
    """``(model, size, frames, input_scale, input_offset)`` of a checkpoint."""
    from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD
    from .checkpoints import is_run_checkpoint, load_classification_run, load_official

    imagenet = ([1 / (255 * s) for s in IMAGENET_STD], [-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)])
    if is_run_checkpoint(path):
        model, cfg, _ = load_classification_run(path, "the integer engine runs the classification network")
        if cfg.data.modality == "event":
            scale, offset = 1.0, 0.0                          # event counts
        elif cfg.data.dataset in UNNORMALISED or cfg.data.modality != "rgb":
            scale, offset = 1 / 255, 0.0                      # frames in [0, 1]
        else:
            scale, offset = imagenet
        return model, cfg.data.size, cfg.data.num_frames, scale, offset
    return load_official(path), None, None, *imagenet


def run(args: argparse.Namespace) -> int:
    for flag in ("size", "frames"):
        v = getattr(args, flag)
        if v is not None and v < 1:
            raise ValueError(f"--{flag} must be >= 1, got {v}")
    model, size, frames, scale, offset = _load(Path(args.checkpoint))
    size = args.size or size or 224
    frames = args.frames or frames or 8
    out = Path(args.out)
    if args.format == "integer":
        from ..deploy import fold
        from ..deploy.integer import IntegerNetwork

        net = IntegerNetwork.from_model(fold(model), args.weight_bits, input_size=(size, size),
                                        membrane_frac_bits=args.membrane_frac_bits,
                                        input_scale=scale, input_offset=offset)
        net.save(out)
        runner = Path(__file__).resolve().parents[1] / "deploy" / "integer" / "runner.py"
        print(f"wrote {out / 'graph.json'} and {out / 'tensors.npz'}: {net}")
        print(f"input: uint8 clip [T, {size}, {size}, {model.in_chans}]; run it without torch:\n"
              f"  python {runner} {out} clip.npy")
        return 0
    import torch

    from ..deploy import export_model

    suffix = ".pt2" if args.format == "torch_export" else ".onnx"
    example = torch.zeros(1, frames, model.in_chans, size, size)
    path = export_model(model, example, out / f"model{suffix}", format=args.format)
    print(f"wrote {path} (T = {frames}, {size}x{size})")
    return 0
