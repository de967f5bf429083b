"""The ``svf`` command line: a thin dispatcher over one module per sub-command.

Each command module defines ``add_arguments(parser)`` and ``run(args) -> int``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# name → (module, one-line help); modules are imported only when their command runs
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "train svf_tiny on an embedded task in minutes and use the checkpoint"),
    "models": ("models", "list registered models with embed_dim and parameter counts"),
    "train": ("train", "train a model from a YAML config (+ key=value overrides)"),
    "eval": ("evaluate", "evaluate a checkpoint: top-1/top-5, confusion matrix"),
    "predict": ("predict", "top-k classes of one video file"),
    "energy": ("energy", "per-layer MACs/SOPs, firing rates and energy of one clip"),
    "bench": ("bench", "side-by-side efficiency benchmarks (LIF, training step, latency vs T)"),
    "ablate": ("ablate", "small-scale ablations of the paper over several seeds"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="svf", description="SpikeVideoFormer: spike-driven video transformer toolkit")
    from .. import __version__
    parser.add_argument("--version", action="version", version=f"spikevideoformer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (mod, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        importlib.import_module(f".{mod}", __name__).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(f".{COMMANDS[args.command][0]}", __name__)
    try:
        return int(module.run(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as e:
        # user errors: one clear line, no stack trace
        print(f"svf {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
