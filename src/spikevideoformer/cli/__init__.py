"""The ``svf`` command line: a thin dispatcher over one module per sub-command.

Each command module defines ``add_arguments(parser)`` and ``run(args) -> int``.
"""
from __future__ import annotations

import argparse
import importlib
import re
import sys

# name → (module, one-line help); modules are imported only when their command runs
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "train svf_tiny on an embedded task in minutes and use the checkpoint"),
    "models": ("models", "list registered models with embed_dim and parameter counts"),
    "train": ("train", "train a model from a YAML config (+ key=value overrides)"),
    "eval": ("evaluate", "evaluate a checkpoint: top-1/top-5, confusion matrix"),
    "predict": ("predict", "top-k classes of one video file"),
    "energy": ("energy", "per-layer MACs/SOPs, firing rates and energy of one clip"),
    "export": ("export", "write a checkpoint as an integer-only network (or torch.export / ONNX)"),
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


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean bad user input (file, argument, config, environment), not a bug.

    The library converts most of them where they arise (``ConfigError``, ``CheckpointError``,
    ``VideoDecodeError``); the third-party types are a safety net.  Anything else is a bug and
    keeps its traceback.
    """
    types: tuple = (ValueError, TypeError, OSError, ImportError)
    # only modules already imported can have raised: look them up, never import here
    for module, name in (("spikevideoformer.engine.checkpoint", "CheckpointError"),
                         ("safetensors", "SafetensorError"), ("yaml", "YAMLError"), ("av", "FFmpegError")):
        exc_type = getattr(sys.modules.get(module), name, None)
        if isinstance(exc_type, type) and issubclass(exc_type, BaseException):
            types += (exc_type,)
    return types


def check_device(device: str, flag: str = "--device") -> str:
    """``device`` if it exists on this machine, else ValueError naming ``flag``."""
    from ..engine.named_configs import check_device as check
    return check(device, flag)


def _one_line(exc: BaseException) -> str:
    """The message on one line; torch's long ``weights_only`` explanation cut to its cause."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    m = re.search(r"Weights only load failed\.(.*?)"
                  r"(?: Check the documentation of torch\.load\b.*?\.html\.?|$)", text)
    if m:
        cause = m.group(1)
        cause = cause[cause.find("WeightsUnpickler error:"):] if "WeightsUnpickler error:" in cause \
            else cause.rsplit("trusted source.", 1)[-1]
        cause = f"not a plain tensor state_dict ({cause.strip().rstrip('.')})"
        text = text[:m.start()] + cause + text[m.end():]
    return text


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(f".{COMMANDS[args.command][0]}", __name__)
    try:
        return int(module.run(args) or 0)
    except user_errors() as e:  # one clear line, no stack trace
        print(f"svf {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
