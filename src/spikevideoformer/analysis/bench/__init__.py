"""Side-by-side efficiency benchmarks (``svf bench``; docs/design.md §5.4, docs/performance.md).

* :mod:`.measure` -- interleaved timing, peak memory, machine description;
* :mod:`.spikingjelly_adapter` -- SpikingJelly's LIF in place of ours;
* :mod:`.sections` -- the ``lif``, ``train`` and ``scaling`` sections and :func:`run_benchmarks`;
* :mod:`.model_sections` -- the opt-in ``ckpt``, ``compile`` and ``fold`` sections;
* :mod:`.report` -- headline ratios, CSV files, tables and the figure (measurements only:
  targets are kept by ``benchmarks/bench_goals.py``).
"""
from .measure import machine_info, peak_memory, time_interleaved, tune_malloc
from .report import REPORTED, VARIANT_TITLES, format_report, plot, summarize, write_csv
from .model_sections import bench_ckpt, bench_compile, bench_fold, measure_grad_checkpointing
from .sections import DEFAULT_SECTIONS, SECTIONS, quick_config, VARIANTS, BenchConfig, bench_lif, bench_scaling, bench_train, run_benchmarks
from .spikingjelly_adapter import SpikingJellyLIF, spikingjelly_available, spikingjelly_version, \
    swap_to_spikingjelly

__all__ = [
    "BenchConfig", "quick_config", "VARIANTS", "VARIANT_TITLES", "REPORTED", "machine_info", "peak_memory",
    "time_interleaved", "tune_malloc", "SpikingJellyLIF", "swap_to_spikingjelly",
    "spikingjelly_available", "spikingjelly_version", "bench_lif", "bench_train", "bench_scaling",
    "summarize", "run_benchmarks", "SECTIONS", "DEFAULT_SECTIONS", "bench_ckpt", "bench_compile",
    "bench_fold", "measure_grad_checkpointing", "format_report", "plot", "write_csv",
]
