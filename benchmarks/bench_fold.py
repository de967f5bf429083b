"""Inference latency of the trained graph vs the folded (deployed) one, side by side.

    python benchmarks/bench_fold.py                         # svf_tiny, svf_15m at 64x64, T=4
    python benchmarks/bench_fold.py --models svf_tiny --size 32 --repeats 20 --csv fold.csv
    python benchmarks/bench_fold.py --threads 1,2 --repconv dense   # the old one-3×3 fold

Both models run in eval mode under ``torch.no_grad()`` on the same random clip; after
``--warmup`` untimed calls each, the two are timed alternately (``--repeats`` times) so that a
change in machine load hits both alike, and the medians are compared. The table also gives
the largest logit difference and the fraction of identical spikes (float32; on CUDA TF32 is
switched off unless ``--tf32``, since its rounding differs between the two graphs).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from spikevideoformer import create_model
from spikevideoformer.analysis import calibrate_bn
from spikevideoformer.atomic import write_csv
from spikevideoformer.deploy import InferenceLIF, fold
from spikevideoformer.layers import LIF
from spikevideoformer.machine import cpu_model


def _spikes(model, x):
    rec, handles = [], []
    for m in model.modules():
        if isinstance(m, (LIF, InferenceLIF)):
            scale = 1 / m.out_scale if isinstance(m, InferenceLIF) else m.spike_max
            handles.append(m.register_forward_hook(lambda mod, i, o, s=scale: rec.append(o * s)))
    with torch.no_grad():
        y = model(x)
    for h in handles:
        h.remove()
    return y, rec


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench(name: str, size: int, frames: int, batch: int, warmup: int, repeats: int,
          attention: str, device: str = "cpu", repconv: str = "auto") -> dict:
    torch.manual_seed(0)
    model = create_model(name, num_classes=400, attention=attention).eval().to(device)
    x = torch.randn(batch, frames, 3, size, size).to(device)
    calibrate_bn(model, x)  # random weights with BN statistics of the input: a spiking network
    deployed = fold(model, repconv=repconv)
    (ya, sa), (yb, sb) = _spikes(model, x), _spikes(deployed, x)
    same = sum(int((a == b).sum()) for a, b in zip(sa, sb))
    total = sum(a.numel() for a in sa)
    times = {"unfolded": [], "folded": []}
    with torch.no_grad():
        for _ in range(warmup):
            model(x)
            deployed(x)
        for _ in range(repeats):
            for key, m in (("unfolded", model), ("folded", deployed)):
                _sync(device)
                t0 = time.perf_counter()
                m(x)
                _sync(device)
                times[key].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"model": name, "device": device, "attention": attention, "repconv": repconv,
            "threads": torch.get_num_threads(),
            "input": f"{batch}x{frames}x3x{size}x{size}",
            "unfolded_ms": med["unfolded"] * 1e3, "folded_ms": med["folded"] * 1e3,
            "ratio": med["folded"] / med["unfolded"],
            "max_dlogit": float((ya - yb).abs().max()), "spike_agreement": same / total}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="svf_tiny,svf_15m")
    p.add_argument("--attention", default="hamming", choices=["hamming", "dot"])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--threads", default=None,
                   help="torch intra-op threads, a comma list runs each (e.g. 1,2)")
    p.add_argument("--repconv", default="auto", choices=["auto", "dense", "factorised"],
                   help="RepConv fold (deploy.fold's repconv)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--tf32", action="store_true", help="allow TF32 on CUDA (faster, spikes may flip)")
    p.add_argument("--csv", default=None, help="also write the table as CSV")
    args = p.parse_args()
    threads = [int(t) for t in args.threads.split(",")] if args.threads else [torch.get_num_threads()]
    if not args.tf32:  # TF32 convolutions round differently in the two graphs: spikes flip
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    rows = []
    for n in threads:
        torch.set_num_threads(n)
        rows += [bench(m.strip(), args.size, args.frames, args.batch, args.warmup, args.repeats,
                       args.attention, args.device, args.repconv)
                 for m in args.models.split(",") if m.strip()]
    where = (torch.cuda.get_device_name(args.device) if args.device.startswith("cuda")
             else cpu_model())
    print(f"torch {torch.__version__}, {where}, fold(repconv={args.repconv!r}), medians of "
          f"{args.repeats} alternating runs after {args.warmup} warm-up runs")
    print(f"{'model':<10} {'threads':>7} {'input':<16} {'unfolded ms':>12} {'folded ms':>10} "
          f"{'folded/unfolded':>16} {'speed-up':>9} {'max|dlogit|':>12} {'same spikes':>12}")
    for r in rows:
        print(f"{r['model']:<10} {r['threads']:>7} {r['input']:<16} {r['unfolded_ms']:>12.1f} "
              f"{r['folded_ms']:>10.1f} {r['ratio']:>16.3f} {1 / r['ratio']:>8.2f}x "
              f"{r['max_dlogit']:>12.2e} {r['spike_agreement']:>12.6f}")
    if args.csv:
        write_csv(args.csv, rows)


if __name__ == "__main__":
    main()
