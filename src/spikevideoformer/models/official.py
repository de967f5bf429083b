"""Import of the authors' official checkpoints (``classification/models/metaspikformer.py``).

Our module names equal the official ones, so the mapping is the identity after unwrapping:
``{"model": sd}`` / ``{"state_dict": sd}`` / ``{"module": sd}`` wrappers and ``module.``
prefixes (DataParallel/DDP) are removed. ``att_mode`` maps as (docs/design.md §3.6): ``"3D_ham"`` →
hamming+joint, ``"3D_dot"`` → dot+joint, ``"2D"`` → dot+spatial. When ``att_mode`` is not
given it is inferred: ``attn_bn`` present → ``"3D_ham"``, otherwise ``"3D_dot"`` (a ``"2D"``
checkpoint has the same keys as ``"3D_dot"``; pass ``att_mode="2D"`` for it).
"""
from __future__ import annotations

import os
from typing import Any, Mapping

import torch

from .backbone import SpikeVideoFormer
from .registry import MODEL_SIZES, create_model
from .weights import read_state_dict, unwrap_state_dict

__all__ = ["ATT_MODES", "convert_official_state_dict", "load_official_checkpoint",
           "infer_config_from_state_dict"]

ATT_MODES = {"3D_ham": ("hamming", "joint"), "3D_dot": ("dot", "joint"), "2D": ("dot", "spatial")}


def convert_official_state_dict(sd: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Official state_dict (possibly wrapped/prefixed) → our state_dict (identity rename)."""
    sd = unwrap_state_dict(sd, "checkpoint")
    out = {}
    for k, v in sd.items():
        for prefix in ("module.", "_orig_mod."):
            if k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v
    return out


def infer_config_from_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Read ``embed_dim``, ``num_classes``, ``in_chans``, ``kd`` and the attention mode from shapes."""
    try:
        stem = sd["downsample1_1.encode_conv.weight"]
        c1 = sd["downsample2.encode_conv.weight"].shape[0]
        c2 = sd["downsample3.encode_conv.weight"].shape[0]
        c3 = sd["downsample4.encode_conv.weight"].shape[0]
    except KeyError as e:
        raise ValueError(f"not a SpikeVideoFormer/Meta-SpikeFormer state_dict: missing {e}") from None
    head = sd.get("head.weight")
    depths = tuple(
        len({k.split(".")[1] for k in sd if k.startswith(f"{b}.")}) for b in ("block3", "block4")
    )
    return {
        "embed_dim": (2 * stem.shape[0], c1, c2, c3),
        "in_chans": stem.shape[1],
        "num_classes": 0 if head is None else head.shape[0],
        "kd": "head_kd.weight" in sd,
        "depths": depths,
        "att_mode": "3D_ham" if any(".attn_bn." in k for k in sd) else "3D_dot",
    }


def _model_name_for(embed_dim: tuple[int, ...]) -> str | None:
    return next((n for n, e in MODEL_SIZES.items() if tuple(e) == tuple(embed_dim)), None)


def load_official_checkpoint(path_or_state_dict: str | os.PathLike | Mapping[str, Any],
                             att_mode: str | None = None, strict: bool = True,
                             **create_model_kwargs: Any) -> SpikeVideoFormer:
    """Build a model from an official checkpoint file or state_dict and load its weights.

    Files are read by :func:`~.weights.read_state_dict` (``torch.load(weights_only=True)``: no
    code runs; or safetensors); an unreadable file raises its ``CheckpointError`` (a ``ValueError``).
    Missing, unexpected and mis-shaped keys are reported together in one ``ValueError``.
    """
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        raw: Any = read_state_dict(path_or_state_dict)
    else:
        raw = path_or_state_dict
    sd = convert_official_state_dict(raw)
    cfg = infer_config_from_state_dict(sd)
    mode = att_mode or cfg["att_mode"]
    if mode not in ATT_MODES:
        raise ValueError(f"att_mode must be one of {list(ATT_MODES)}, got {mode!r}")
    if mode == "3D_ham" and cfg["att_mode"] != "3D_ham":
        raise ValueError("att_mode='3D_ham' but the checkpoint has no attn_bn weights")
    attention, design = ATT_MODES[mode]
    kw = dict(num_classes=cfg["num_classes"], in_chans=cfg["in_chans"], kd=cfg["kd"],
              depths=cfg["depths"], attention=attention, design=design)
    kw.update(create_model_kwargs)
    name = _model_name_for(cfg["embed_dim"]) or "svf_tiny"
    model = create_model(name, embed_dim=cfg["embed_dim"], **kw)
    load_state_dict_checked(model, sd, strict=strict)
    return model


def load_state_dict_checked(model: torch.nn.Module, sd: Mapping[str, torch.Tensor],
                            strict: bool = True) -> None:
    """``load_state_dict`` that reports missing/unexpected/mis-shaped keys in one error."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in sd and sd[k].shape != own[k].shape]
    if shapes or (strict and (missing or unexpected)):
        def show(xs: list[str]) -> str:
            return ", ".join(xs[:8]) + (f" ... (+{len(xs) - 8} more)" if len(xs) > 8 else "")
        parts = [f"{len(missing)} missing: {show(missing)}" if missing else "",
                 f"{len(unexpected)} unexpected: {show(unexpected)}" if unexpected else "",
                 f"{len(shapes)} mis-shaped: {show(shapes)}" if shapes else ""]
        raise ValueError("state_dict does not match the model; " + "; ".join(p for p in parts if p))
    model.load_state_dict({k: v for k, v in sd.items() if k in own}, strict=False)
