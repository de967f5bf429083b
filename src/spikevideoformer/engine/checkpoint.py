"""Pickle-free, crash-safe checkpoints.

A checkpoint is a directory with three files::

    model.safetensors        model weights (``module.``/``_orig_mod.`` prefixes stripped)
    train_state.safetensors  optimizer tensors ``optim.state.<param_idx>.<key>``, RNG states
                             ``rng.<rank>.torch`` / ``rng.<rank>.cuda.<i>`` / ``rng.<rank>.numpy``
                             (uint8), extra tensors ``extra.<key>``; python-``random`` and numpy
                             scalars as JSON in the safetensors header
    meta.json                epoch, step, config, optimizer hyper-parameters, scheduler state,
                             library version -- written last, so its presence marks completeness

Writes are atomic at two levels: every file is written to a temporary name, fsynced and
``os.replace``-d, and the whole directory is staged as ``.<name>.tmp-*`` and swapped in with
two renames (old -> ``.<name>.old-*``, staged -> ``<name>``).  A crash at any point leaves the
previous checkpoint intact (either at ``<name>`` or, if the crash hit between the two renames,
as ``.<name>.old-*``, which :func:`resolve_checkpoint` recovers).  Files are written through
:func:`spikevideoformer.atomic.atomic_path` and read through :mod:`spikevideoformer.models.weights`
(also ``.pt``/``.pth`` files for :func:`load_model_weights`, with ``weights_only=True``):
nothing is ever unpickled.  :class:`CheckpointError` is defined there and re-exported here.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from safetensors.torch import save_file

from ..atomic import atomic_path, fsync_dir, write_bytes
from ..models.finetune import LoadReport, load_matching_weights
from ..models.weights import (CheckpointError, abbreviate, one_line, read_safetensors, read_state_dict,
                              strip_prefixes)
from .distributed import unwrap_model
from .seeding import capture_rng_state, restore_rng_state

__all__ = [
    "CheckpointError", "LoadReport", "save_checkpoint", "load_checkpoint", "load_model_weights",
    "resolve_checkpoint", "MODEL_FILE", "STATE_FILE", "META_FILE",
]

MODEL_FILE, STATE_FILE, META_FILE = "model.safetensors", "train_state.safetensors", "meta.json"
FORMAT_VERSION = 1
PathLike = Union[str, os.PathLike]


def _atomic_save_tensors(tensors: Dict[str, torch.Tensor], path: Path, metadata: Dict[str, str]) -> int:
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)
    return path.stat().st_size


def _cpu_tensors(state: Mapping[str, Any], what: str) -> Dict[str, torch.Tensor]:
    """Detached, contiguous CPU tensors that own their storage (safetensors forbids sharing)."""
    out, seen = {}, set()
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{what} entry {key!r} is a {type(value).__name__}, not a tensor")
        t = value.detach().cpu().contiguous()
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if t.numel() and (ptr in seen or storage.nbytes() != t.numel() * t.element_size()):
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        out[key] = t
    return out


# --------------------------------------------------------------------------- helpers
def _jsonable(value: Any, where: str) -> Any:
    if isinstance(value, torch.Tensor):
        return {"__tensor__": value.detach().cpu().tolist(), "dtype": str(value.dtype)[6:]}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"{where}: {type(value).__name__} is not JSON-serialisable")


def _from_json(value: Any, like: Any = None) -> Any:
    if isinstance(value, dict) and "__tensor__" in value:
        return torch.tensor(value["__tensor__"], dtype=getattr(torch, value["dtype"]))
    if isinstance(value, list) and isinstance(like, tuple):
        return tuple(value)
    return value


def _shape(t: torch.Tensor) -> str:
    return "x".join(str(s) for s in t.shape) or "scalar"


def _current_rank() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return 0


# --------------------------------------------------------------------------- save
def _checkpoint_dir(path: PathLike) -> Path:
    path = Path(path)
    return path.parent if path.suffix in (".safetensors", ".json") else path


def save_checkpoint(path: PathLike, model: torch.nn.Module, optimizer: Optional[torch.optim.Optimizer] = None,
                    scheduler: Any = None, *, epoch: int, step: int, config: Any = None,
                    extra_state: Optional[Mapping[str, Any]] = None,
                    rng_states: Union[str, Sequence[Mapping[str, Any]], None] = "current") -> Path:
    """Atomically write a checkpoint directory (see module docstring) and return its path.

    Args:
        path: checkpoint directory (e.g. ``out_dir/last``), or a file inside one.
        model: the model (DDP / compiled wrappers are unwrapped; keys saved without prefixes).
        optimizer: optional; its tensors go to train_state.safetensors, the rest to meta.json.
        scheduler: optional; its state goes to meta.json if JSON-serialisable.
        epoch: training position (epoch), stored in meta.json.
        step: training position (global step), stored in meta.json.
        config: a JSON-able dict (or a :class:`TrainConfig`) recorded in meta.json.
        extra_state: JSON-able values go to ``meta["extra_state"]``; tensor values are stored
            in train_state.safetensors as ``extra.<key>``.
        rng_states: ``"current"`` (this process's RNG), ``None`` (no RNG) or a per-rank list of
            :func:`capture_rng_state` dicts (index = rank).
    """
    from .. import __version__

    target = _checkpoint_dir(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    uid = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    if config is not None and not isinstance(config, Mapping):
        from .config import to_dict
        config = to_dict(config)
    meta: Dict[str, Any] = {
        "format_version": FORMAT_VERSION, "library": "spikevideoformer", "version": __version__,
        "torch_version": torch.__version__, "checkpoint_id": uid, "epoch": int(epoch),
        "step": int(step), "config": _jsonable(config, "config"), "optimizer": None,
        "scheduler": None, "scheduler_class": type(scheduler).__name__ if scheduler is not None else None,
        "rng_ranks": 0, "extra_state": {}, "files": {},
    }
    header = {"checkpoint_id": uid, "format": "spikevideoformer"}
    model_tensors = _cpu_tensors(strip_prefixes(unwrap_model(model).state_dict()), "model state_dict")
    state: Dict[str, torch.Tensor] = {}
    if optimizer is not None:
        sd = optimizer.state_dict()
        scalars = {}
        for idx, st in sd["state"].items():
            for key, value in st.items():
                if isinstance(value, torch.Tensor):
                    state[f"optim.state.{idx}.{key}"] = value
                else:
                    scalars[f"{idx}.{key}"] = _jsonable(value, f"optimizer.state.{idx}.{key}")
        meta["optimizer"] = {"class": type(optimizer).__name__, "state_scalars": scalars,
                             "param_groups": _jsonable(sd["param_groups"], "optimizer.param_groups")}
    if scheduler is not None:
        try:
            meta["scheduler"] = json.loads(json.dumps(_jsonable(scheduler.state_dict(), "scheduler")))
        except (TypeError, ValueError) as exc:
            warnings.warn(f"scheduler state is not JSON-serialisable and was not saved: {exc}")
    if rng_states == "current":
        rng_states = [capture_rng_state()]
    rng_json = {}
    for rank, rs in enumerate(rng_states or []):
        state[f"rng.{rank}.torch"] = rs["torch"]
        state[f"rng.{rank}.numpy"] = rs["numpy"]["keys"]
        for i, c in enumerate(rs["cuda"]):
            state[f"rng.{rank}.cuda.{i}"] = c
        rng_json[str(rank)] = {"numpy": {k: v for k, v in rs["numpy"].items() if k != "keys"},
                               "python": rs["python"], "cuda_devices": len(rs["cuda"])}
    meta["rng_ranks"] = len(rng_json)
    header_state = dict(header, rng=json.dumps(rng_json))
    for key, value in (extra_state or {}).items():
        if isinstance(value, torch.Tensor):
            state[f"extra.{key}"] = value
        else:
            meta["extra_state"][key] = _jsonable(value, f"extra_state.{key}")
    state = _cpu_tensors(state, "train state")

    staging = target.parent / f".{target.name}.tmp-{uid}"
    backup = target.parent / f".{target.name}.old-{uid}"
    committed = False
    staging.mkdir()
    try:
        meta["files"][MODEL_FILE] = _atomic_save_tensors(model_tensors, staging / MODEL_FILE, header)
        meta["files"][STATE_FILE] = _atomic_save_tensors(state, staging / STATE_FILE, header_state)
        write_bytes(staging / META_FILE, (json.dumps(meta, indent=2) + "\n").encode())
        fsync_dir(staging)
        if target.exists():
            os.replace(target, backup)
        os.replace(staging, target)
        committed = True
        fsync_dir(target.parent)
    finally:
        if not committed and backup.exists() and not target.exists():
            try:  # roll back: put the previous checkpoint where it was
                os.replace(backup, target)
            except OSError:
                pass  # resolve_checkpoint() recovers it from `backup`
        shutil.rmtree(staging, ignore_errors=True)
    for stale in target.parent.glob(f".{target.name}.*-*"):  # older crashed saves + backup
        if stale.is_dir() and (stale.name.startswith(f".{target.name}.tmp-")
                               or stale.name.startswith(f".{target.name}.old-")):
            shutil.rmtree(stale, ignore_errors=True)
    return target


# --------------------------------------------------------------------------- load
def _read_meta(d: Path) -> Dict[str, Any]:
    try:
        meta = json.loads((d / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {d / META_FILE}: {one_line(exc)}") from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f"corrupt {d / META_FILE}: expected a JSON object, got {type(meta).__name__}")
    return meta


def resolve_checkpoint(path: PathLike) -> Path:
    """Directory of the complete checkpoint at ``path`` (a directory or a file inside it).

    If ``path`` is missing or incomplete because a save was interrupted, the newest complete
    leftover (``.<name>.old-*`` / ``.<name>.tmp-*``) is used instead, with a warning.
    """
    d = _checkpoint_dir(path)
    if d.exists() and not d.is_dir():
        raise CheckpointError(f"{d} is not a checkpoint folder (expected a directory holding "
                              f"{META_FILE}, {MODEL_FILE} and {STATE_FILE})")
    if (d / META_FILE).is_file():
        return d
    leftovers = [p for p in d.parent.glob(f".{d.name}.*-*")
                 if (p / META_FILE).is_file() and (p.name.startswith(f".{d.name}.old-")
                                                   or p.name.startswith(f".{d.name}.tmp-"))]
    if leftovers:
        best = max(leftovers, key=lambda p: (_read_meta(p).get("step", -1), p.stat().st_mtime))
        warnings.warn(f"checkpoint {d} is missing/incomplete (interrupted save); using {best}")
        return best
    if not d.exists():
        raise FileNotFoundError(f"checkpoint not found: {d}")
    if not (d / MODEL_FILE).exists():
        runs = [str(d / n) for n in ("best", "last") if (d / n / META_FILE).is_file()]
        hint = f"; did you mean {' or '.join(runs)}?" if runs else ""
        raise CheckpointError(f"{d} is not a checkpoint folder: it has neither {META_FILE} "
                              f"nor {MODEL_FILE}{hint}")
    raise CheckpointError(f"incomplete checkpoint {d}: {META_FILE} is missing (the save was "
                          f"interrupted before it completed)")


def _load_model_state(model: torch.nn.Module, tensors: Dict[str, torch.Tensor], strict: bool,
                      source: Path) -> None:
    target = unwrap_model(model)
    own = target.state_dict()
    mismatched = [f"{k} (checkpoint {_shape(v)} vs model {_shape(own[k])})"
                  for k, v in tensors.items() if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in tensors]
    unexpected = [k for k in tensors if k not in own]
    problems = []
    if mismatched:
        problems.append(f"shape mismatch for {len(mismatched)} key(s): {abbreviate(mismatched)}")
    if strict and missing:
        problems.append(f"missing {len(missing)} key(s): {abbreviate(missing)}")
    if strict and unexpected:
        problems.append(f"unexpected {len(unexpected)} key(s): {abbreviate(unexpected)}")
    if problems:
        raise CheckpointError(f"cannot load {source} into {type(target).__name__}: " + "; ".join(problems)
                              + ("" if not mismatched else " (use load_model_weights() to drop "
                                 "mismatched layers such as a classification head)"))
    target.load_state_dict(tensors, strict=strict)


def load_checkpoint(path: PathLike, model: torch.nn.Module, optimizer: Optional[torch.optim.Optimizer] = None,
                    scheduler: Any = None, *, strict: bool = True, restore_rng: bool = True,
                    rank: Optional[int] = None) -> Dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`; returns its ``meta.json`` dict.

    ``strict`` governs missing/unexpected model keys; shape mismatches always raise
    :class:`CheckpointError` listing the keys.  ``restore_rng`` restores the RNG state saved for
    ``rank`` (default: this process's distributed rank; falls back to rank 0 with a warning).
    ``meta["extra_state"]`` includes tensor extras; ``meta["path"]`` is the directory used.
    """
    d = resolve_checkpoint(path)
    meta = _read_meta(d)
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{d}: unsupported checkpoint format {meta.get('format_version')!r}")
    sizes = meta.get("files") if isinstance(meta.get("files"), dict) else {}
    for name in (MODEL_FILE, STATE_FILE):
        f = d / name
        if not f.is_file():
            raise CheckpointError(f"incomplete checkpoint {d}: {f} is missing")
        if sizes.get(name) not in (None, f.stat().st_size):
            raise CheckpointError(f"corrupt checkpoint {d}: {f} has {f.stat().st_size} bytes, "
                                  f"{META_FILE} expects {sizes[name]} (truncated or modified)")
        if read_safetensors(f, tensors=False)[1].get("checkpoint_id") != meta.get("checkpoint_id"):
            raise CheckpointError(f"inconsistent checkpoint {d}: {name} belongs to another save")
    _load_model_state(model, strip_prefixes(read_safetensors(d / MODEL_FILE)[0]), strict, d)
    state, header = read_safetensors(d / STATE_FILE)
    try:
        rng_json = json.loads(header.get("rng", "{}"))
    except ValueError as exc:
        raise CheckpointError(f"corrupt checkpoint file {d / STATE_FILE}: bad RNG header ({exc})") from exc

    if optimizer is not None:
        opt = meta.get("optimizer")
        if opt is None:
            raise CheckpointError(f"{d} holds no optimizer state")
        groups = opt["param_groups"]
        cur = optimizer.param_groups
        if len(groups) != len(cur) or any(len(g["params"]) != len(c["params"]) for g, c in zip(groups, cur)):
            raise CheckpointError(
                f"optimizer in {d} has param groups of sizes {[len(g['params']) for g in groups]}, "
                f"the current one {[len(c['params']) for c in cur]}")
        groups = [{k: _from_json(v, c.get(k)) for k, v in g.items()} for g, c in zip(groups, cur)]
        st: Dict[int, Dict[str, Any]] = {}
        for key, value in state.items():
            if key.startswith("optim.state."):
                idx, name = key[len("optim.state."):].split(".", 1)
                st.setdefault(int(idx), {})[name] = value
        for key, value in opt.get("state_scalars", {}).items():
            idx, name = key.split(".", 1)
            st.setdefault(int(idx), {})[name] = _from_json(value)
        optimizer.load_state_dict({"state": st, "param_groups": groups})
    if scheduler is not None:
        if meta.get("scheduler") is None:
            warnings.warn(f"{d} holds no scheduler state; the scheduler was not restored")
        else:
            scheduler.load_state_dict(meta["scheduler"])
    if restore_rng and rng_json:
        r = _current_rank() if rank is None else rank
        if str(r) not in rng_json:
            warnings.warn(f"{d} has RNG states for {len(rng_json)} rank(s); rank {r} uses rank 0's")
            r = 0
        info = rng_json[str(r)]
        restore_rng_state({
            "torch": state[f"rng.{r}.torch"], "python": info["python"],
            "cuda": [state[f"rng.{r}.cuda.{i}"] for i in range(info["cuda_devices"])],
            "numpy": dict(info["numpy"], keys=state[f"rng.{r}.numpy"])})
    meta["extra_state"] = dict(meta.get("extra_state") or {})
    meta["extra_state"].update({k[len("extra."):]: v for k, v in state.items() if k.startswith("extra.")})
    meta["path"] = str(d)
    return meta


# --------------------------------------------------------------------------- fine-tuning
def load_model_weights(path: PathLike, model: torch.nn.Module, drop_mismatched_head: bool = True) -> LoadReport:
    """Initialise ``model`` from a weights file for fine-tuning; returns a :class:`LoadReport`.

    ``path`` may be a checkpoint directory, a ``.safetensors`` file or a ``.pt``/``.pth``
    state_dict (read by :func:`~spikevideoformer.models.weights.read_state_dict`:
    ``torch.load(weights_only=True)``, wrappers and ``module.`` prefixes removed).  Matching
    is :func:`~spikevideoformer.models.finetune.load_matching_weights`: mis-shaped tensors
    (e.g. a head trained with another ``num_classes``) are dropped and reported when
    ``drop_mismatched_head`` is true, otherwise :class:`CheckpointError` is raised; a conv
    weight that differs only in its input channels (an RGB stem loaded into a 2-channel event
    model) is adapted (mean of the filters over the input channels, repeated and rescaled by
    ``C_old / C_new``) and reported as adapted.  Missing keys keep their initialisation;
    unexpected keys are ignored; both are reported.
    """
    path = Path(path)
    weights = read_state_dict(resolve_checkpoint(path) / MODEL_FILE if path.is_dir() else path)
    return load_matching_weights(unwrap_model(model), weights, str(path), drop_mismatched_head)
