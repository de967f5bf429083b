#!/usr/bin/env python
"""Run the ``svf bench`` benchmarks without the console script (same arguments).

    python benchmarks/run_bench.py                 # the documented CPU run (~4-5 min, 2 cores)
    python benchmarks/run_bench.py --quick         # few-second smoke run
    python benchmarks/run_bench.py --device cuda   # on a GPU (LIF uses the Triton kernels)
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from spikevideoformer.cli import bench  # noqa: E402

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="run_bench", description=bench.__doc__.splitlines()[0])
    bench.add_arguments(parser)
    sys.exit(bench.run(parser.parse_args()))
