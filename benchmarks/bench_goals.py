#!/usr/bin/env python
"""The targets of the efficiency work, judged on the output folder of ``svf bench``.

The library reports measurements only (``bench_summary.csv``: target ``(reported)``, met
empty); this script fills ``target`` and ``met`` of the rows that have a goal, rewrites the
file and prints the table. ``run_bench.py`` calls it after its run.

    python benchmarks/bench_goals.py runs/bench [--markdown]

Goals are judged on the values as written (6 significant digits). A ratio's CPU-time twin
(``... [CPU time]``) has the same goal as its wall-time row.
"""
from __future__ import annotations

import argparse
import csv
import os
import re
import sys
from typing import Callable, Optional, Tuple

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from spikevideoformer.analysis.bench import format_report, write_csv  # noqa: E402

Judgement = Tuple[str, Callable[[float], bool]]

# (summary label, target, test)
GOALS = [
    ("LIF fwd+bwd speed-up vs SpikingJelly (x)", ">= 2", lambda v: v >= 2),
    ("LIF fwd+bwd peak memory vs SpikingJelly (ratio)", "<= 0.6", lambda v: v <= 0.6),
    ("train step speed-up vs SpikingJelly LIF (x)", ">= 1.5", lambda v: v >= 1.5),
    ("train step peak memory vs SpikingJelly LIF (ratio)", "<= 0.7", lambda v: v <= 0.7),
    ("train step speed-up vs SJ, with compact_spike_storage (x)", ">= 1.5", lambda v: v >= 1.5),
    ("train step peak memory vs SJ, with compact_spike_storage (ratio)", "<= 0.7", lambda v: v <= 0.7),
    ("fold speed-up vs unfolded (x)", ">= 1.5", lambda v: v >= 1.5),
]
# grad checkpointing: >= 3x less activation memory at <= 1.4x the step time (any T)
CKPT = [(re.compile(r"grad checkpointing activation memory reduction, T=\d+ \(x\)"), ">= 3",
         lambda v: v >= 3),
        (re.compile(r"grad checkpointing step time, T=\d+ \(x\)"), "<= 1.4", lambda v: v <= 1.4)]
# torch.compile speed-up: reported only (no goal)
# joint SDHA latency grows at most 5 % faster than linearly in T: 4.2x from T=8 to T=32
JOINT_LATENCY = re.compile(r"latency T=(\d+) / T=(\d+), joint SDHA \(x\)")


def judge(label: str) -> Optional[Judgement]:
    """``(target text, test)`` of a summary row's label, or ``None`` if it has no goal."""
    label = label[:-len(" [CPU time]")] if label.endswith(" [CPU time]") else label
    for name, target, test in GOALS:
        if label == name:
            return target, test
    for pattern, target, test in CKPT:
        if pattern.fullmatch(label):
            return target, test
    m = JOINT_LATENCY.fullmatch(label)
    if m:
        lin = int(m.group(1)) / int(m.group(2))
        return f"<= {4.2 * lin / 4:.2f}", (lambda v: v <= 4.2 * lin / 4)
    return None


def apply_goals(rows: list[dict]) -> list[dict]:
    """Summary rows with ``target`` and ``met`` filled where a goal applies."""
    out = []
    for r in rows:
        j = judge(r["goal"])
        if j is None:
            out.append(dict(r))
        else:
            target, test = j
            out.append(dict(r, target=target, met=None if r["value"] is None else bool(test(r["value"]))))
    return out


def judge_folder(out_dir: str, markdown: bool = False) -> list[dict]:
    """Judge ``out_dir/bench_summary.csv`` in place; print the goals table; return the rows."""
    path = os.path.join(out_dir, "bench_summary.csv")
    with open(path, newline="", encoding="utf-8") as f:
        rows = [dict(r, value=float(r["value"]) if r["value"] else None,
                     met=None if r["met"] == "" else r["met"] == "True") for r in csv.DictReader(f)]
    rows = apply_goals(rows)
    write_csv(path, rows)
    print(format_report({"summary": rows}, markdown=markdown))
    return rows


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="output folder of svf bench (holds bench_summary.csv)")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = ap.parse_args(argv)
    judge_folder(args.out, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
