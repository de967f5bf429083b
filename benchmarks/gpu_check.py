#!/usr/bin/env python
"""GPU check of the LIF kernels and ``svf bench --device cuda`` in one short script.

1. Triton (and the torch fallback) LIF on CUDA vs ``lif_reference``: bit-exact spikes, close
   gradients, for every neuron variant and T in {1, 3, 16, 64}; CUDA spikes vs CPU spikes.
2. ``svf bench --device cuda`` (default sections) into ``--out``.

    PYTHONPATH=src python benchmarks/gpu_check.py --out runs/gpu
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

import torch  # noqa: E402

from spikevideoformer.layers import neuron as N  # noqa: E402

VARIANTS = [dict(), dict(soft_reset=True), dict(detach_reset=False), dict(spike_max=4),
            dict(v_reset=-0.2, v_th=0.7), dict(soft_reset=True, detach_reset=False),
            dict(decay_input=False), dict(spike_max=3, detach_reset=False),
            dict(decay_input=False, v_reset=0.3, spike_max=2), dict(tau=3.0, alpha=2.0)]


def check_kernels() -> int:
    print("backends:", N.available_lif_backends(), flush=True)
    bad = 0
    for backend in ("triton", "torch"):
        old = N.set_lif_backend(backend)
        n = 0
        for T in (1, 3, 16, 64):
            for kw in VARIANTS:
                p = N.LIFParams(**kw)
                xc = torch.randn(T, 3, 4099) * 2 + 0.5
                x = xc.cuda().requires_grad_()
                x2 = x.detach().clone().requires_grad_()
                used = N.lif_backend_for(x, p)
                y, y2 = N.lif_multistep(x, p), N.lif_reference(x2, p)
                g = torch.randn_like(y)
                (y * g).sum().backward()
                (y2 * g).sum().backward()
                with torch.no_grad():
                    y_inf = N.lif_multistep(x, p)
                ok = (torch.equal(y, y2) and torch.equal(y_inf, y2)
                      and torch.equal(y.cpu(), N.lif_reference(xc, p)))
                try:
                    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-5, atol=1e-6)
                except AssertionError as e:
                    ok = False
                    print(str(e)[:300])
                n += 1
                if not ok or used != backend:
                    bad += 1
                    print(f"MISMATCH backend={backend} used={used} T={T} {kw}", flush=True)
        N.set_lif_backend(old)
        print(f"{backend}: {n} cases checked", flush=True)
    print("kernel check:", "OK" if not bad else f"{bad} FAILURES", flush=True)
    return bad


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/gpu")
    ap.add_argument("--skip-bench", action="store_true")
    ap.add_argument("bench_args", nargs="*", help="extra arguments for svf bench (after --)")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device")
        return 2
    print(torch.__version__, torch.cuda.get_device_name(), flush=True)
    t0 = time.time()
    bad = check_kernels()
    print(f"kernel check took {time.time() - t0:.1f} s", flush=True)
    if not a.skip_bench:
        from spikevideoformer.cli import bench
        p = argparse.ArgumentParser()
        bench.add_arguments(p)
        bench_args = p.parse_args(["--device", "cuda", "--threads", "0", "--out", a.out, *a.bench_args])
        if bench.run(bench_args) == 0:
            from bench_goals import judge_folder  # this folder: the efficiency targets
            judge_folder(a.out, markdown=bench_args.markdown)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
