"""``svf energy``: per-layer MACs/SOPs, firing rates and energy of one clip (docs/design.md §5).

    svf energy --model svf_55m --frames 8 --size 224                 # the paper's setting
    svf energy --model svf_tiny --size 64 --out runs/energy          # + CSV and PNG files
    svf energy --checkpoint runs/demo/best --data moving_digits      # trained weights
    svf energy --model svf_tiny --size 64 --growth 8,32              # SNN vs ANN growth in T
    svf energy --checkpoint runs/demo/best --data moving_digits --counted   # integer network, counted

Energies come from ``spikevideoformer.analysis.profile`` (45 nm: E_MAC 4.6 pJ, E_AC 0.9 pJ)
on the deployed (folded) network; see docs/energy.md for what is counted.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ..layers.blocks import ATTENTIONS, DESIGNS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="svf_55m", help="registered model name (default svf_55m)")
    p.add_argument("--frames", type=int, default=None, help="clip length T (default 8)")
    p.add_argument("--size", type=int, default=None, help="frame height and width (default 224)")
    p.add_argument("--batch", type=int, default=1, help="clips per forward pass; energy is per clip")
    p.add_argument("--checkpoint", default=None,
                   help="weights: a checkpoint folder (model.safetensors + meta.json), or a "
                        ".safetensors/.pth state_dict in the official layout")
    p.add_argument("--data", default="random",
                   help="'random' (default), 'moving_digits', or a video file (e.g. clip.mp4)")
    p.add_argument("--attention", default="hamming", choices=ATTENTIONS)
    p.add_argument("--design", default="joint", choices=DESIGNS)
    p.add_argument("--spike-max", type=int, default=1, help="Integer-LIF D (1 = binary spikes)")
    p.add_argument("--neuron", default=None, choices=["lif", "relu"],
                   help="neuron kind (default: relu for softmax attention, else lif)")
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--in-chans", type=int, default=3, help="input channels (2: event frames)")
    p.add_argument("--input-spikes", default="auto", choices=["auto", "yes", "no"],
                   help="is the input itself spikes (binary/event frames)? default: auto")
    p.add_argument("--unfolded", action="store_true",
                   help="profile the training graph (RepConv/BN unfolded) instead of the deployed one")
    p.add_argument("--e-mac", type=float, default=4.6, help="pJ per MAC (default 4.6, 45 nm)")
    p.add_argument("--e-ac", type=float, default=0.9, help="pJ per AC (default 0.9, 45 nm)")
    p.add_argument("--growth", default=None, metavar="T1,T2,...",
                   help="energy at several clip lengths for this SNN and its ANN counterpart "
                        "(softmax attention, ReLU) and the ratios E(T_last)/E(T_first)")
    p.add_argument("--calibrate-bn", default="auto", choices=["auto", "yes", "no"],
                   help="set BatchNorm statistics from the input before profiling (auto: only "
                        "for random weights, which are otherwise almost silent)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--summary", action="store_true", help="print totals only, not every layer")
    p.add_argument("--counted", action="store_true",
                   help="run the integer-only network (deploy.integer) on the clip, as uint8, and "
                        "report the operations it executes instead of rate x MACs estimates")
    p.add_argument("--weight-bits", type=int, default=8, help="integer weight width for --counted")
    p.add_argument("--out", default=None,
                   help="folder for energy_layers.csv, energy_neurons.csv, energy_stages.csv, "
                        "energy.json, energy_stages.png, firing_rates.png, spike_raster.png")


# --------------------------------------------------------------------------- model + data
def _load_model(args: argparse.Namespace):
    """Model from the flags or a checkpoint; returns ``(model, defaults)`` (frames/size/norm)."""
    from ..models import create_model

    defaults: dict = {}
    ckpt = args.checkpoint
    if ckpt is not None:
        from .checkpoints import is_run_checkpoint, load_classification_run, load_official

        path = Path(ckpt)
        if is_run_checkpoint(path):
            from ..tasks.datasets import MODALITY_CHANNELS

            model, cfg, _ = load_classification_run(
                path, "profile other task models with spikevideoformer.analysis.profile")
            defaults = {"frames": cfg.data.num_frames, "size": cfg.data.size,
                        "in_chans": MODALITY_CHANNELS[cfg.data.modality], "cfg": cfg}
            return model, defaults
        model = load_official(path)  # an unreadable file: CheckpointError naming it
        return model, {"in_chans": model.in_chans}
    neuron = args.neuron or ("relu" if args.attention == "softmax" else "lif")
    model = create_model(args.model, num_classes=args.num_classes, attention=args.attention,
                         design=args.design, neuron=neuron, spike_max=args.spike_max,
                         in_chans=args.in_chans)
    return model.eval(), {"in_chans": args.in_chans}


def _make_video(args: argparse.Namespace, frames: int, size: int, in_chans: int,
                cfg=None) -> torch.Tensor:
    """Input ``[B, T, C, S, S]`` from ``--data`` (a video file is prepared as the run ``cfg``
    was trained when a checkpoint folder gave one)."""
    data = args.data
    g = torch.Generator().manual_seed(args.seed)
    if data == "random":
        if in_chans == 2:  # event frames: sparse binary spikes
            return (torch.rand(args.batch, frames, 2, size, size, generator=g) < 0.1).float()
        return torch.randn(args.batch, frames, in_chans, size, size, generator=g)
    if data == "moving_digits":
        try:
            from ..data.moving_digits import MovingDigits
        except ImportError as e:
            raise ImportError(f"--data moving_digits needs spikevideoformer.data.moving_digits "
                              f"(and scikit-learn): {e}") from e
        channels = in_chans if in_chans in (1, 3) else 3
        ds = MovingDigits("val", num_samples=args.batch, num_frames=frames, size=size,
                          seed=args.seed, channels=channels)
        return torch.stack([ds[i][0] for i in range(args.batch)])
    path = Path(data)
    if not path.is_file():
        raise FileNotFoundError(f"--data: {data!r} is neither 'random', 'moving_digits' nor a file")
    try:
        from ..data.transforms import center_crop, normalize, resize_short_side, to_float_clip
        from ..data.video_io import read_video
    except ImportError as e:
        raise ImportError(f"reading a video file needs spikevideoformer.data.video_io (PyAV): {e}") from e
    if cfg is not None:
        from ..tasks.classification.runner import load_clip_for_model

        return load_clip_for_model(path, cfg).repeat(args.batch, 1, 1, 1, 1)
    clip = to_float_clip(read_video(path, num_frames=frames))  # [T, 3, H, W] in [0, 1]
    clip = normalize(center_crop(resize_short_side(clip, size), size))
    if in_chans != 3:
        raise ValueError(f"--data VIDEO gives RGB frames; the model expects {in_chans} channels")
    return clip.unsqueeze(0).repeat(args.batch, 1, 1, 1, 1)


# --------------------------------------------------------------------------- counted
def _as_uint8(clip: torch.Tensor):
    """``(uint8 [T, H, W, C], scale, offset)`` with ``clip ≈ scale · pix + offset`` per channel:
    integer counts 0..255 as they are, other clips spread over 0..255 per channel."""
    x = clip.detach().double().cpu()
    if bool((x == x.round()).all()) and x.min() >= 0 and x.max() <= 255:
        return x.permute(0, 2, 3, 1).numpy().astype("uint8"), 1.0, 0.0
    lo = x.amin(dim=(0, 2, 3))
    span = torch.clamp(x.amax(dim=(0, 2, 3)) - lo, min=1e-12) / 255
    pix = torch.round((x - lo.view(1, -1, 1, 1)) / span.view(1, -1, 1, 1))
    return pix.permute(0, 2, 3, 1).numpy().astype("uint8"), span.tolist(), lo.tolist()


def _counted(model, video, args):
    """The integer network's counted operations on the first clip, as an ``EnergyReport``."""
    import numpy as np

    from ..analysis.energy_report import EnergyReport, LayerEnergy, NeuronStats
    from ..deploy import fold
    from ..deploy.integer import IntegerNetwork

    clip, scale, offset = _as_uint8(video[0])
    net = IntegerNetwork.from_model(fold(model.cpu()), args.weight_bits, input_size=clip.shape[1:3],
                                    input_scale=scale, input_offset=offset)
    res = net.run(clip, record_spikes=True)
    e_mac, e_ac = args.e_mac * 1e-12, args.e_ac * 1e-12
    rows = [LayerEnergy(r.name, r.stage, r.kind, r.input_shape, r.input, r.rate, r.mean_count,
                        r.dense_macs if r.input == "spike" else r.ops,
                        r.ops if r.input == "spike" else 0.0,
                        r.ops * (e_ac if r.input == "spike" else e_mac)) for r in res.counts.rows]
    lifs = {op["name"]: op["attrs"] for op in net.graph["ops"] if op["op"] == "lif"}
    neurons = []
    for name, s in res.spikes.items():
        flat = s.reshape(s.shape[0], -1)
        fired = flat != 0
        idx = np.linspace(0, flat.shape[1] - 1, min(32, flat.shape[1])).round().astype(int)
        neurons.append(NeuronStats(name, lifs[name]["stage"], tuple(s.shape), lifs[name]["spike_max"],
                                   float(fired.mean()), float(flat[fired].mean()) if fired.any() else 0.0,
                                   fired.mean(1).tolist(), flat[:, idx].astype(np.int16)))
    print(f"counted on the integer network ({args.weight_bits}-bit weights) of the first clip as "
          f"uint8; real-fed rows are executed (in-bounds) MACs, spike-fed rows executed additions")
    return EnergyReport(rows, neurons, e_mac, e_ac, (1, *video.shape[1:]), 1, int(video.shape[1]),
                        True, False)


# --------------------------------------------------------------------------- commands
def _profile(model, video, args):
    from ..analysis import profile

    spikes = {"auto": "auto", "yes": True, "no": False}[args.input_spikes]
    return profile(model, video, e_mac=args.e_mac * 1e-12, e_ac=args.e_ac * 1e-12,
                   input_is_spikes=spikes, fold=not args.unfolded)


def _write_outputs(report, out: Path, title: str) -> list[Path]:
    from ..atomic import write_text
    from ..analysis.plots import plot_firing_rates, plot_spike_raster, plot_stage_energy

    files = [report.to_csv(out / "energy_layers.csv"),
             report.to_csv(out / "energy_neurons.csv", what="neurons"),
             report.to_csv(out / "energy_stages.csv", what="stages"),
             write_text(out / "energy.json", json.dumps(report.to_dict(), indent=1) + "\n"),
             plot_stage_energy(report, out / "energy_stages.png", title=f"{title}: "
                               f"{report.total_energy_mj:.4g} mJ per clip")]
    if report.neurons:
        files.append(plot_firing_rates(report, out / "firing_rates.png"))
        files.append(plot_spike_raster(report, out / "spike_raster.png"))
    return files


def _run_growth(args, model, defaults, size: int) -> int:
    from ..atomic import write_text
    from ..models import create_model

    try:
        steps = [int(t) for t in args.growth.split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"--growth expects comma-separated frame counts, got {args.growth!r}") from None
    if len(steps) < 2 or min(steps) < 1:
        raise ValueError(f"--growth needs at least two positive frame counts, got {args.growth!r}")
    ann = create_model(args.model, num_classes=getattr(model, "num_classes", args.num_classes),
                       attention="softmax", neuron="relu", design=getattr(model, "design", args.design),
                       embed_dim=getattr(model, "embed_dim", None),
                       in_chans=defaults["in_chans"]).eval().to(args.device)
    rows = []
    print(f"energy growth with clip length, {args.model} at {size}x{size} "
          f"(SNN: attention={getattr(model, 'attention', args.attention)}, "
          f"design={getattr(model, 'design', args.design)}; ANN: softmax attention + ReLU)")
    print(f"{'T':>4} {'SNN mJ':>12} {'ANN mJ':>12} {'SNN GSOPs':>11} {'ANN GMACs':>11} {'ANN/SNN':>8}")
    for t in steps:
        video = _make_video(args, t, size, defaults["in_chans"]).to(args.device)
        snn = _profile(model, video, args)
        dense = _profile(ann, video, args)
        rows.append((t, snn.total_energy_mj, dense.total_energy_mj, snn.total_sops, dense.total_macs))
        print(f"{t:>4} {snn.total_energy_mj:>12.4f} {dense.total_energy_mj:>12.4f} "
              f"{snn.total_sops / 1e9:>11.3f} {dense.total_macs / 1e9:>11.3f} "
              f"{dense.total_energy_mj / snn.total_energy_mj:>7.1f}x")
    t0, e0s, e0a = rows[0][:3]
    t1, e1s, e1a = rows[-1][:3]
    print(f"growth E({t1})/E({t0}): SNN {e1s / e0s:.2f}x, ANN {e1a / e0a:.2f}x "
          f"(frames x{t1 / t0:g}; paper, 8 -> 32 frames: SNN 4.1x, ANN 8.3x)")
    if args.out:
        lines = ["frames,snn_energy_mj,ann_energy_mj,snn_sops,ann_macs"]
        lines += [f"{t},{a:.6g},{b:.6g},{c:.6g},{d:.6g}" for t, a, b, c, d in rows]
        path = write_text(Path(args.out) / "energy_growth.csv", "\n".join(lines) + "\n")
        print(f"wrote {path}")
    return 0


def run(args: argparse.Namespace) -> int:
    from . import check_device
    for name in ("batch", "frames", "size", "in_chans"):
        val = getattr(args, name)
        if val is not None and val < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {val}")
    if args.num_classes < 0:
        raise ValueError(f"--num-classes must be >= 0, got {args.num_classes}")
    check_device(args.device)
    torch.manual_seed(args.seed)
    model, defaults = _load_model(args)
    model.to(args.device)
    frames = args.frames or defaults.get("frames") or 8
    size = args.size or defaults.get("size") or 224
    calibrate = args.calibrate_bn == "yes" or (args.calibrate_bn == "auto" and not args.checkpoint)
    video = _make_video(args, frames, size, defaults["in_chans"], defaults.get("cfg")).to(args.device)
    if calibrate:
        from ..analysis import calibrate_bn

        calibrate_bn(model, video).eval()
        print(f"BatchNorm statistics calibrated on the input ({'random' if not args.checkpoint else 'loaded'} "
              f"weights; --calibrate-bn no keeps them)")
    if args.growth:
        return _run_growth(args, model, defaults, size)
    if args.counted and (args.unfolded or args.input_spikes != "auto"):
        raise ValueError("--counted runs the deployed integer network: drop --unfolded / --input-spikes")
    report = _counted(model, video, args) if args.counted else _profile(model, video, args)
    print(report.summary() if args.summary else report.table())
    if args.out:
        title = args.checkpoint or args.model
        for f in _write_outputs(report, Path(args.out), str(title)):
            print(f"wrote {f}")
    return 0
