"""Inference latency of ``torch.compile(model)`` vs eager, on the CPU, side by side.

    python benchmarks/compile_speed.py                    # svf_tiny, 1 thread, 32x32, T=2
    python benchmarks/compile_speed.py --size 64 --frames 4 --threads 2 --backend inductor

Under ``torch.compile`` the LIF neurons take the traceable torch backend (the C kernel is an
opaque call; ``lif_backends.graph_capture``), so the compiled graph fuses the LIF loop with
its neighbours while eager runs the ``auto`` backend. Both models run in eval mode under
``torch.no_grad()`` on the same clip; after warm-up (the compile itself, timed separately)
they are timed alternately ``--repeats`` times and the medians compared. The outputs are
checked to agree (inductor reorders float ops: logits to rounding, spikes may rarely differ).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from spikevideoformer import create_model
from spikevideoformer.layers.neuron import lif_backend_for


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="svf_tiny")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--frames", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--backend", default="inductor")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = create_model(a.model, num_classes=10).eval()
    video = torch.randn(a.batch, a.frames, 3, a.size, a.size)
    compiled = torch.compile(model, backend=a.backend)
    with torch.no_grad():
        t0 = time.perf_counter()
        out_c = compiled(video)
        compile_s = time.perf_counter() - t0
        out_e = model(video)
        for _ in range(2):
            model(video), compiled(video)
        te, tc = [], []
        for _ in range(a.repeats):
            for fn, ts in ((model, te), (compiled, tc)):
                t = time.perf_counter()
                fn(video)
                ts.append(time.perf_counter() - t)
    e, c = statistics.median(te), statistics.median(tc)
    print(f"CPU: {cpu_name()}; torch {torch.__version__}; threads {a.threads}; "
          f"eager LIF backend: {lif_backend_for(torch.zeros(a.frames, 8, 16))}")
    print(f"{a.model}, B={a.batch}, T={a.frames}, {a.size}x{a.size}, eval, no_grad, "
          f"median of {a.repeats}; compile ({a.backend}) took {compile_s:.1f} s")
    print(f"eager {e * 1e3:.2f} ms, compiled {c * 1e3:.2f} ms, speed-up {e / c:.2f}x; "
          f"max |logit diff| {(out_c - out_e).abs().max().item():.2e}")


if __name__ == "__main__":
    main()
