"""Typed, validated training configuration.

A run is described by four small sections collected in :class:`TrainConfig`::

    model:  what network to build              (ModelConfig)
    data:   what clips to feed it              (DataConfig)
    optim:  how to optimise it                 (OptimConfig)
    run:    where/how the run is executed       (RunConfig)

:func:`load_config` turns a YAML/JSON file (or a dict) plus ``section.key=value``
overrides into a :class:`TrainConfig`.  Unknown keys, wrong types and invalid
values raise :class:`ConfigError` naming the offending ``section.key``.  Every
key is documented in ``docs/config_schema.md``.

Example::

    cfg = load_config("configs/demo.yaml", overrides=["optim.lr=3e-4", "data.batch_size=8"])
    save_config(cfg, "runs/demo/config.yaml")
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import math
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple, Union

import yaml

from ..layers.blocks import ATTENTIONS, DESIGNS  # the model's own lists (re-exported)

__all__ = [
    "ConfigError", "ModelConfig", "DataConfig", "OptimConfig", "RunConfig", "TrainConfig",
    "load_config", "to_dict", "save_config", "ATTENTIONS", "DESIGNS", "NEURONS", "MODALITIES",
    "AMP_DTYPES",
]

NEURONS = ("lif", "relu")
MODALITIES = ("rgb", "gray", "event")
AMP_DTYPES = ("bfloat16", "float16")
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class ConfigError(ValueError):
    """Invalid configuration: unknown key, wrong type or out-of-range value."""


@dataclass
class ModelConfig:
    """Network to build (consumed by the model builder, ``models.create_model``)."""

    name: str = "svf_tiny"
    num_classes: int = 4
    attention: str = "hamming"
    design: str = "joint"
    embed_dim: Optional[Tuple[int, ...]] = None
    neuron: str = "lif"
    spike_max: int = 1
    temporal_state: bool = True
    attention_scale: Optional[Union[float, str]] = None
    surrogate_alpha: Optional[float] = None
    bn_momentum: Optional[float] = None
    init: Optional[str] = None
    grad_checkpointing: bool = False
    zero_init_residual: bool = True


@dataclass
class DataConfig:
    """Clips to train/validate on (consumed by the task's data builder)."""

    dataset: str = "moving_digits"
    root: Optional[str] = None
    num_frames: int = 8
    size: int = 32
    modality: str = "rgb"
    batch_size: int = 32
    num_workers: int = 0
    train_samples: Optional[int] = None
    val_samples: Optional[int] = None
    eval_clips: int = 1
    eval_crops: int = 1
    vc_definition: str = "vspw"


@dataclass
class OptimConfig:
    """AdamW + per-step linear-warmup/cosine schedule (consumed by the Trainer)."""

    lr: float = 1e-3
    weight_decay: float = 0.05
    betas: Tuple[float, float] = (0.9, 0.999)
    epochs: int = 10
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.01
    grad_clip: Optional[float] = 1.0
    label_smoothing: float = 0.1
    per_step_loss: bool = False
    amp: bool = False
    amp_dtype: str = "bfloat16"
    compact_spikes: bool = True


@dataclass
class RunConfig:
    """Execution: task, output directory, seeding, device, cadences (consumed by the Trainer)."""

    task: str = "classification"
    out_dir: str = "runs/demo"
    seed: int = 0
    device: str = "auto"
    deterministic: bool = True
    log_every: int = 50
    eval_every: int = 1
    save_every: int = 1
    sync_bn: bool = False
    resume: Optional[str] = None
    early_stop_patience: Optional[int] = None
    early_stop_min_delta: float = 0.0


@dataclass
class TrainConfig:
    """A complete training run: ``model``, ``data``, ``optim`` and ``run`` sections."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)


_SECTIONS: Dict[str, type] = {"model": ModelConfig, "data": DataConfig, "optim": OptimConfig,
                              "run": RunConfig}


# --------------------------------------------------------------------------- coercion
def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _bad(key: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(f"{key}: expected {expected}, got {type(value).__name__} {value!r}")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a YAML-parsed ``value`` to the annotated type ``tp`` or raise ConfigError."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Union:
        inner = [a for a in args if a is not type(None)]
        if value is None:
            return None
        for i, option in enumerate(inner):  # first type that accepts the value wins
            try:
                return _coerce(value, option, key)
            except ConfigError:
                if i == len(inner) - 1:
                    raise
    if origin in (tuple, Tuple):
        if not isinstance(value, (list, tuple)):
            raise _bad(key, f"a list ({_type_name(tp)})", value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{key}: expected a list of {len(args)} items, got {list(value)!r}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _bad(key, "true/false", value)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return int(value)
        raise _bad(key, "an integer", value)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # PyYAML (YAML 1.1) reads ``3e-4`` as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise _bad(key, "a number", value)
    if tp is str:
        if isinstance(value, (str, os.PathLike)):
            return os.fspath(value)
        raise _bad(key, "a string", value)
    raise ConfigError(f"{key}: unsupported annotation {tp!r}")  # pragma: no cover


def _unknown_key(key: str, section: Optional[str], valid: Iterable[str], where: str = "") -> ConfigError:
    valid = list(valid)
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    loc = f"in section '{section}'" if section else "at top level"
    return ConfigError(f"{where}unknown key '{key}' {loc}{hint}; valid keys: {', '.join(valid)}")


def _build_section(name: str, raw: Mapping[str, Any]) -> Any:
    cls = _SECTIONS[name]
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        if key not in hints:
            raise _unknown_key(str(key), name, names)
        kwargs[key] = _coerce(value, hints[key], f"{name}.{key}")
    return cls(**kwargs)


# --------------------------------------------------------------------------- validation
def _check(cond: bool, key: str, msg: str, value: Any) -> None:
    if not cond:
        raise ConfigError(f"{key}: {msg}, got {value!r}")


def _choice(key: str, value: str, choices: Tuple[str, ...]) -> None:
    _check(value in choices, key, f"must be one of {list(choices)}", value)


def _validate(cfg: TrainConfig) -> None:
    m, d, o, r = cfg.model, cfg.data, cfg.optim, cfg.run
    _check(bool(m.name), "model.name", "must be non-empty", m.name)
    _check(m.num_classes >= 0, "model.num_classes", "must be >= 0 (0 = no classification head)",
           m.num_classes)
    _choice("model.attention", m.attention, ATTENTIONS)
    _choice("model.design", m.design, DESIGNS)
    _choice("model.neuron", m.neuron, NEURONS)
    if m.embed_dim is not None:
        _check(len(m.embed_dim) == 4 and all(c > 0 for c in m.embed_dim), "model.embed_dim",
               "must be null or 4 positive channel widths", list(m.embed_dim))
    _check(m.spike_max >= 1, "model.spike_max", "must be >= 1", m.spike_max)
    _check(m.surrogate_alpha is None or (math.isfinite(m.surrogate_alpha) and m.surrogate_alpha > 0),
           "model.surrogate_alpha", "must be null (official 4.0) or a finite number > 0",
           m.surrogate_alpha)
    _check(m.surrogate_alpha is None or m.neuron == "lif", "model.surrogate_alpha",
           "applies to spiking (lif) neurons only; set it to null with model.neuron=relu",
           m.surrogate_alpha)
    _check(m.bn_momentum is None or (math.isfinite(m.bn_momentum) and 0 < m.bn_momentum <= 1),
           "model.bn_momentum", "must be null (PyTorch's 0.1) or a number in (0, 1]", m.bn_momentum)
    for k in ("num_frames", "size", "batch_size", "eval_clips"):
        _check(getattr(d, k) >= 1, f"data.{k}", "must be >= 1", getattr(d, k))
    _check(d.eval_crops in (1, 3), "data.eval_crops", "must be 1 or 3", d.eval_crops)
    _check(d.vc_definition in ("vspw", "all_windows"), "data.vc_definition",
           "must be 'vspw' or 'all_windows'", d.vc_definition)
    _check(d.num_workers >= 0, "data.num_workers", "must be >= 0", d.num_workers)
    for k in ("train_samples", "val_samples"):
        v = getattr(d, k)
        _check(v is None or v >= 1, f"data.{k}", "must be null or >= 1", v)
    _choice("data.modality", d.modality, MODALITIES)
    _check(bool(d.dataset), "data.dataset", "must be non-empty", d.dataset)
    _check(math.isfinite(o.lr) and o.lr > 0, "optim.lr", "must be a finite number > 0", o.lr)
    _check(math.isfinite(o.weight_decay) and o.weight_decay >= 0, "optim.weight_decay", "must be >= 0",
           o.weight_decay)
    _check(all(0.0 <= b < 1.0 for b in o.betas), "optim.betas", "must be two numbers in [0, 1)",
           list(o.betas))
    _check(o.epochs >= 1, "optim.epochs", "must be >= 1", o.epochs)
    _check(0 <= o.warmup_epochs <= o.epochs, "optim.warmup_epochs", f"must be in [0, epochs={o.epochs}]",
           o.warmup_epochs)
    _check(0.0 <= o.min_lr_ratio <= 1.0, "optim.min_lr_ratio", "must be in [0, 1]", o.min_lr_ratio)
    _check(o.grad_clip is None or (math.isfinite(o.grad_clip) and o.grad_clip >= 0), "optim.grad_clip",
           "must be null (off), 0 (off) or a positive max-norm", o.grad_clip)
    _check(0.0 <= o.label_smoothing < 1.0, "optim.label_smoothing", "must be in [0, 1)",
           o.label_smoothing)
    _choice("optim.amp_dtype", o.amp_dtype, AMP_DTYPES)
    _check(r.early_stop_patience is None or r.early_stop_patience >= 1, "run.early_stop_patience",
           "must be null or >= 1", r.early_stop_patience)
    _check(math.isfinite(r.early_stop_min_delta) and r.early_stop_min_delta >= 0, "run.early_stop_min_delta",
           "must be a finite number >= 0", r.early_stop_min_delta)
    _check(bool(r.task), "run.task", "must be non-empty (a registered task)", r.task)
    _check(bool(r.out_dir), "run.out_dir", "must be non-empty", r.out_dir)
    _check(0 <= r.seed < 2 ** 32 - 1024, "run.seed", "must be in [0, 2**32 - 1024)", r.seed)
    _check(bool(_DEVICE_RE.match(r.device)), "run.device", "must be auto, cpu, mps, cuda or cuda:N",
           r.device)
    for k in ("log_every", "eval_every", "save_every"):
        _check(getattr(r, k) >= 1, f"run.{k}", "must be >= 1", getattr(r, k))


def _yaml_problem(exc: Exception) -> str:
    """One line for a PyYAML error: what went wrong and where (1-based line and column)."""
    mark = getattr(exc, "problem_mark", None)
    what = getattr(exc, "problem", None) or " ".join(str(exc).split())
    return f"{what} (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else what


# --------------------------------------------------------------------------- public API
def _parse_overrides(overrides: Iterable[str]) -> Dict[str, Dict[str, Any]]:
    out: Dict[str, Dict[str, Any]] = {}
    for item in overrides:
        if not isinstance(item, str) or "=" not in item:
            raise ConfigError(f"override {item!r} must look like 'section.key=value'")
        dotted, text = item.split("=", 1)
        dotted = dotted.strip()
        parts = dotted.split(".")
        where = f"override '{item}': "
        if len(parts) != 2 or not all(parts):
            raise ConfigError(f"{where}key must be 'section.key' with section in {list(_SECTIONS)}")
        section, key = parts
        if section not in _SECTIONS:
            raise _unknown_key(section, None, _SECTIONS, where)
        valid = [f.name for f in dataclasses.fields(_SECTIONS[section])]
        if key not in valid:
            raise _unknown_key(key, section, valid, where)
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            value = text
        out.setdefault(section, {})[key] = value
    return out


def load_config(path_or_dict: Union[str, Path, Mapping, TrainConfig, None] = None,
                overrides: Optional[Iterable[str]] = None) -> TrainConfig:
    """Build a validated :class:`TrainConfig`.

    Args:
        path_or_dict: a YAML/JSON file, a nested dict ``{"model": {...}, ...}``, an existing
            :class:`TrainConfig` (copied) or ``None`` for all defaults. Missing keys take defaults.
        overrides: ``["optim.lr=3e-4", "data.batch_size=8", "model.embed_dim=[16,32,64,80]"]``;
            values are parsed as YAML (``null``, ``true``, lists, numbers).

    Raises:
        ConfigError: unknown section/key (the message names it, its section and the valid
            keys), wrong type or invalid value (the message names ``section.key``).
        FileNotFoundError: ``path_or_dict`` is a path that does not exist.
    """
    if path_or_dict is None:
        raw: Dict[str, Any] = {}
    elif isinstance(path_or_dict, TrainConfig):
        raw = to_dict(path_or_dict)
    elif isinstance(path_or_dict, Mapping):
        raw = copy.deepcopy(dict(path_or_dict))
    else:
        path = Path(path_or_dict)
        if path.is_dir():
            raise ConfigError(f"config {path} is a directory, not a YAML/JSON file")
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config {path} is not a UTF-8 text file ({exc.reason} at byte {exc.start})") from exc
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"config {path} is not valid YAML/JSON: {_yaml_problem(exc)}") from exc
    if not isinstance(raw, Mapping):
        raise ConfigError(f"top level of the config must be a mapping, got {type(raw).__name__}")
    for section in raw:
        if section not in _SECTIONS:
            raise _unknown_key(str(section), None, _SECTIONS)
    merged: Dict[str, Dict[str, Any]] = {}
    for name in _SECTIONS:
        section = raw.get(name)
        section = {} if section is None else section
        if not isinstance(section, Mapping):
            raise ConfigError(f"section '{name}' must be a mapping, got {type(section).__name__}")
        merged[name] = dict(section)
    for name, values in _parse_overrides(overrides or ()).items():
        merged[name].update(values)
    cfg = TrainConfig(**{name: _build_section(name, merged[name]) for name in _SECTIONS})
    _validate(cfg)
    return cfg


def to_dict(cfg: TrainConfig) -> Dict[str, Any]:
    """Plain nested dict (tuples become lists) suitable for JSON/YAML and :func:`load_config`."""
    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return plain(dataclasses.asdict(cfg))


def save_config(cfg: TrainConfig, path: Union[str, Path]) -> Path:
    """Atomically write ``cfg`` as JSON (``.json``) or YAML (any other suffix); returns the path."""
    from .logger import atomic_write_bytes

    path = Path(path)
    data = to_dict(cfg)
    if path.suffix.lower() == ".json":
        text = json.dumps(data, indent=2) + "\n"
    else:
        text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
    atomic_write_bytes(path, text.encode("utf-8"))
    return path
