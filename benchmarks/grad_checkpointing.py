"""Training memory and step time with and without activation checkpointing, side by side.

One training step (forward + backward of a summed-logit loss, batch 1) of ``svf_15m`` in train
mode at small frames, for T = 16 and 32, with ``model.set_grad_checkpointing(False / True)``:

* activation peak: peak bytes allocated during the step above what was live before it
  (parameters and their already allocated ``.grad``, zeroed in place, are not counted), from
  ``analysis.bench.measure.peak_memory`` (torch.profiler memory events on CPU, the allocator's
  high-water mark on CUDA);
* step time: median wall and process-CPU time of ``--reps`` interleaved steps.

    OMP_NUM_THREADS=1 python benchmarks/grad_checkpointing.py            # T 16 and 32, 64x64
    python benchmarks/grad_checkpointing.py --frames 8 --size 32 --model svf_tiny   # quick
"""
from __future__ import annotations

import argparse
import copy
import statistics

import torch

from spikevideoformer.analysis.bench.measure import (
    machine_info, peak_memory, time_interleaved, tune_malloc,
)
from spikevideoformer.models import create_model


def _step(model: torch.nn.Module, video: torch.Tensor) -> None:
    for p in model.parameters():
        if p.grad is not None:
            p.grad.zero_()
    model(video).sum().backward()


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
    torch.manual_seed(0)
    base = create_model(args.model, num_classes=10).train().to(args.device)
    models = {"plain": base, "checkpointed": copy.deepcopy(base)}
    models["checkpointed"].set_grad_checkpointing(True)
    print(f"{'T':>3} {'variant':>13} {'act. peak MiB':>14} {'wall s':>8} {'CPU s':>8}")
    for T in args.frames:
        video = torch.randn(args.batch, T, 3, args.size, args.size, device=args.device)
        steps = {name: (lambda m=m: _step(m, video)) for name, m in models.items()}
        for fn in steps.values():  # allocate the .grad tensors outside the measurement
            fn()
        peak = {name: peak_memory(fn, args.device) for name, fn in steps.items()}
        cpu: dict = {}
        wall = time_interleaved(steps, reps=args.reps, warmup=0, device=args.device, cpu_times=cpu)
        for name in models:
            print(f"{T:>3} {name:>13} {peak[name] / 2**20:>14.1f} "
                  f"{statistics.median(wall[name]):>8.2f} {statistics.median(cpu[name]):>8.2f}")
        ratio = peak["plain"] / max(peak["checkpointed"], 1)
        slow = statistics.median(wall["checkpointed"]) / statistics.median(wall["plain"])
        slow_cpu = statistics.median(cpu["checkpointed"]) / statistics.median(cpu["plain"])
        print(f"{T:>3} {'ratio':>13} {ratio:>13.2f}x less {slow:>7.2f}x {slow_cpu:>7.2f}x time")


if __name__ == "__main__":
    main()
