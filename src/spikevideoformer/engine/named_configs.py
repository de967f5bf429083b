"""Configs by name: the YAML files shipped with the package, a name or path resolved to a file,
and :func:`load_named_config` (name or path + overrides + output folder, checked).

    cfg = load_named_config("demo", ["optim.epochs=2"], out_dir="runs/x")
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Iterable, Optional, Union

from .config import TrainConfig, load_config

__all__ = ["shipped_configs", "resolve_config", "check_device", "load_named_config"]


def shipped_configs() -> list[str]:
    """Names of the configs that ship with the package (``svf train --config NAME``)."""
    return sorted(p.name[:-5] for p in resources.files("spikevideoformer.configs").iterdir()
                  if p.name.endswith(".yaml"))


def resolve_config(name_or_path: Union[str, Path]) -> Path:
    """The YAML file ``name_or_path`` names: a file, or a shipped config's name."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    if p.is_dir():
        raise ValueError(f"config {str(name_or_path)!r} is a directory, not a YAML file")
    shipped = resources.files("spikevideoformer.configs") / f"{name_or_path}.yaml"
    if shipped.is_file():
        return Path(str(shipped))
    raise FileNotFoundError(f"config {str(name_or_path)!r} is neither a file nor a shipped config "
                            f"({', '.join(shipped_configs())})")


def check_device(device: str, what: str = "run.device") -> str:
    """``device`` if torch knows it and it is available here, else ValueError naming ``what``."""
    import torch

    if device == "auto":
        return device
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"{what} {device!r} is not a torch device (e.g. cpu, cuda, cuda:1)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{what} {device!r}: CUDA is not available on this machine")
    if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"{what} {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def load_named_config(name_or_path: Union[str, Path], overrides: Iterable[str] = (),
                      out_dir: Optional[Union[str, Path]] = None) -> TrainConfig:
    """:func:`~.config.load_config` of a shipped name or a YAML path plus ``overrides``, with
    ``out_dir`` (if given) as ``run.out_dir``; the output folder must not be a file and
    ``run.device`` must exist on this machine."""
    overrides = list(overrides) + ([f"run.out_dir={out_dir}"] if out_dir else [])
    cfg = load_config(resolve_config(name_or_path), overrides)
    out = Path(cfg.run.out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output folder {out} (run.out_dir) is an existing file")
    check_device(cfg.run.device, "run.device")
    return cfg
