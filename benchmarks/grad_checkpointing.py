"""Training memory and step time with and without activation checkpointing, side by side.

One training step (forward + backward of a summed-logit loss, batch 1) of ``svf_15m`` in train
mode at small frames, for T = 16 and 32, with ``model.set_grad_checkpointing(False / True)``:

* activation peak: peak bytes allocated during the step above what was live before it
  (parameters and their already allocated ``.grad``, zeroed in place, are not counted), from
  ``analysis.bench.measure.peak_memory`` (torch.profiler memory events on CPU, the allocator's
  high-water mark on CUDA);
* step time: median wall and process-CPU time of ``--reps`` interleaved steps.

The measuring is ``analysis.bench.measure_grad_checkpointing`` (also ``svf bench --sections ckpt``).

    OMP_NUM_THREADS=1 python benchmarks/grad_checkpointing.py            # T 16 and 32, 64x64
    python benchmarks/grad_checkpointing.py --frames 8 --size 32 --model svf_tiny   # quick
"""
from __future__ import annotations

import argparse

import torch

from spikevideoformer.analysis.bench import machine_info, measure_grad_checkpointing, tune_malloc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="svf_15m")
    ap.add_argument("--frames", type=int, nargs="+", default=[16, 32])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    tune_malloc()
    info = machine_info(args.device)
    print(f"# {args.model}, batch {args.batch}, {args.size}x{args.size}, train mode, "
          f"{info['torch_threads']} thread(s), torch {info['torch']}, LIF backend {info['lif_backend']}")
    print(f"# CPU: {info['cpu']}" + (f"; GPU: {info['gpu']}" if "gpu" in info else ""))
    rows = measure_grad_checkpointing(args.model, args.frames, args.size, args.batch,
                                      reps=args.reps, device=args.device)
    print(f"{'T':>3} {'variant':>13} {'act. peak MiB':>14} {'wall s':>8} {'CPU s':>8}")
    for T in args.frames:
        by = {r["name"]: r for r in rows if r["T"] == T}
        for name, r in by.items():
            cpu = r["cpu_ms"] / 1e3 if r["cpu_ms"] is not None else float("nan")
            print(f"{T:>3} {name:>13} {r['act_peak_mb']:>14.1f} {r['time_ms'] / 1e3:>8.2f} {cpu:>8.2f}")
        p, c = by["plain"], by["checkpointed"]
        ratio = p["act_peak_mb"] / max(c["act_peak_mb"], 2**-20)
        slow = c["time_ms"] / p["time_ms"]
        slow_cpu = (c["cpu_ms"] / p["cpu_ms"]) if p["cpu_ms"] else float("nan")
        print(f"{T:>3} {'ratio':>13} {ratio:>13.2f}x less {slow:>7.2f}x {slow_cpu:>7.2f}x time")


if __name__ == "__main__":
    main()
