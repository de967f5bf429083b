#!/usr/bin/env python
"""Run the ``svf bench`` benchmarks without the console script (same arguments), then judge
the efficiency goals (``bench_goals.py``) on the result.

    python benchmarks/run_bench.py                 # the documented CPU run (~4-5 min, 2 cores)
    python benchmarks/run_bench.py --quick         # few-second smoke run
    python benchmarks/run_bench.py --device cuda   # on a GPU (LIF uses the Triton kernels)
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))
sys.path.insert(0, HERE)

from spikevideoformer.cli import bench  # noqa: E402

from bench_goals import judge_folder  # noqa: E402

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="run_bench", description=bench.__doc__.splitlines()[0])
    bench.add_arguments(parser)
    args = parser.parse_args()
    rc = bench.run(args)
    if rc == 0 and os.path.isfile(os.path.join(args.out, "bench_summary.csv")):
        print()
        judge_folder(args.out, markdown=args.markdown)
    sys.exit(rc)
