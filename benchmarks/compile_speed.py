"""Inference latency of ``torch.compile(model)`` vs eager, on the CPU, side by side.

    python benchmarks/compile_speed.py                    # svf_tiny, 1 thread, 32x32, T=2
    python benchmarks/compile_speed.py --size 64 --frames 4 --threads 2 --backend inductor

Under ``torch.compile`` the LIF neurons take the traceable torch backend (the C kernel is an
opaque call; ``lif_backends.graph_capture``), so the compiled graph fuses the LIF loop with
its neighbours while eager runs the ``auto`` backend. Both models run in eval mode under
``torch.no_grad()`` on the same clip; after warm-up (the compile itself, timed separately)
they are timed alternately ``--repeats`` times and the medians compared. The outputs are
checked to agree (inductor reorders float ops: logits to rounding, spikes may rarely differ).
The measuring is ``analysis.bench``'s ``compile`` section (also ``svf bench --sections compile``).
"""
from __future__ import annotations

import argparse

import torch

from spikevideoformer.analysis.bench import BenchConfig
from spikevideoformer.analysis.bench.model_sections import bench_compile
from spikevideoformer.layers.neuron import lif_backend_for
from spikevideoformer.machine import cpu_model


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="svf_tiny")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--frames", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=15, help="timed calls per model (multiple of 3)")
    ap.add_argument("--backend", default="inductor")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    cfg = BenchConfig(compile_model=a.model, compile_size=a.size, compile_frames=a.frames,
                      batch=a.batch, reps=max(1, a.repeats // 3), compile_backend=a.backend)
    rows = {r["name"]: r for r in bench_compile(cfg)}
    e, c = rows["eager"], rows["compiled"]
    print(f"CPU: {cpu_model()}; torch {torch.__version__}; threads {a.threads}; "
          f"eager LIF backend: {lif_backend_for(torch.zeros(a.frames, 8, 16))}")
    print(f"{a.model}, B={a.batch}, T={a.frames}, {a.size}x{a.size}, eval, no_grad, "
          f"median of {c['reps']}; compile ({a.backend}) took {c['compile_s']:.1f} s")
    print(f"eager {e['time_ms']:.2f} ms, compiled {c['time_ms']:.2f} ms, speed-up "
          f"{e['time_ms'] / c['time_ms']:.2f}x; max |logit diff| {c['max_dlogit']:.2e}")


if __name__ == "__main__":
    main()
