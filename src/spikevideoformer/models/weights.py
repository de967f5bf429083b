"""The library's one reader of weights files (state_dicts), and its error type.

``.safetensors`` files are read with safetensors; any other file (``.pt``, ``.pth``, ...)
with ``torch.load(weights_only=True)``, so nothing but tensors and plain containers is ever
unpickled.  Wrappers such as ``{"model": sd}`` / ``{"state_dict": sd}`` (up to three deep)
and the key prefixes ``module.`` (DataParallel/DDP) and ``_orig_mod.`` (``torch.compile``)
are removed.  Every failure is a :class:`CheckpointError` whose message names the file.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Mapping, Sequence, Tuple

import torch

__all__ = ["CheckpointError", "WRAPPER_KEYS", "read_state_dict", "read_safetensors",
           "unwrap_state_dict", "strip_prefixes", "one_line", "abbreviate"]

#: Keys under which checkpoints commonly nest the state_dict, tried in this order.
WRAPPER_KEYS = ("model", "state_dict", "model_state", "module", "model_ema", "net")
_PREFIXES = ("module.", "_orig_mod.")


class CheckpointError(RuntimeError, ValueError):
    """Missing, unreadable, incomplete, inconsistent or incompatible checkpoint / weights file.

    A ``RuntimeError`` (what ``engine.checkpoint`` always raised) and a ``ValueError`` (what
    ``models.official`` raised for unreadable files), so existing handlers of either keep working.
    """


def one_line(exc: BaseException) -> str:
    """``exc`` as one line (library messages, e.g. torch's unpickling errors, span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def abbreviate(items: Sequence[str], n: int = 20) -> str:
    """The first ``n`` items, comma-separated, with a count of the rest."""
    items = list(items)
    more = f", ... ({len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def strip_prefixes(state: Mapping[str, Any]) -> Dict[str, Any]:
    """``state`` with every leading ``module.`` / ``_orig_mod.`` removed from its keys."""
    out = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for p in _PREFIXES:
                if key.startswith(p):
                    key, changed = key[len(p):], True
        out[key] = value
    return out


def unwrap_state_dict(obj: Any, source: Any = "state_dict") -> Dict[str, torch.Tensor]:
    """The tensors of a (possibly wrapped) state_dict; ``source`` names it in errors.

    While a key of :data:`WRAPPER_KEYS` holds a mapping (at most three levels), descend into
    the first such key; non-tensor entries of the result are dropped.
    """
    for _ in range(3):
        key = next((k for k in WRAPPER_KEYS
                    if isinstance(obj, Mapping) and isinstance(obj.get(k), Mapping)), None)
        if key is None:
            break
        obj = obj[key]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{source} does not contain a state_dict (a mapping of tensors), "
                              f"it holds a {type(obj).__name__}")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{source} does not contain a state_dict: no tensors and none of "
                              f"the wrapper keys {WRAPPER_KEYS}; top-level keys: "
                              f"{sorted(map(str, obj))[:10]}")
    return tensors


def read_safetensors(path: str | os.PathLike, tensors: bool = True
                     ) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """``(tensors, header metadata)`` of a safetensors file (``tensors=False``: header only)."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
        return (load_file(str(path)) if tensors else {}), header
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"corrupt or unreadable checkpoint file {path}: {one_line(exc)}") from exc


def read_state_dict(path: str | os.PathLike) -> Dict[str, torch.Tensor]:
    """The state_dict in a ``.safetensors`` / ``.pt`` / ``.pth`` file, unwrapped, prefixes removed.

    Raises ``FileNotFoundError`` if ``path`` is not a file, :class:`CheckpointError` if it
    cannot be read safely or holds no state_dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        obj: Any = read_safetensors(path)[0]
    else:
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)  # never a full unpickle
        except Exception as exc:  # noqa: BLE001 - pickled code, corrupt archive, not a torch file ...
            raise CheckpointError(f"cannot read weights file {path} (torch.load, weights_only=True): "
                                  f"{one_line(exc)}") from exc
    return strip_prefixes(unwrap_state_dict(obj, path))
