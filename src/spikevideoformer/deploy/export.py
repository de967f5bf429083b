"""Export the deployed (folded) model: ``torch.export`` program or ONNX file.

``export_model(model, example, path, format="torch_export" | "onnx")`` folds the model
(:func:`~spikevideoformer.deploy.fold`) unless it is folded already, traces one forward pass
on ``example`` (public layout ``[B, T, C, H, W]``) and writes the result atomically.

The exported graph has fixed shapes, **including a fixed number of frames T**: the LIF time
loop is a Python loop over T (``deploy.fold.lif_inference``, no custom autograd Function),
which the tracer unrolls into T copies of the neuron update. Export once per clip length.
Input validation (``models.check_video``) is data-dependent Python control flow and is not
part of the graph: the exported program expects a finite float tensor of the example's shape.

ONNX needs the optional extras ``pip install onnx onnxruntime``, imported only when
``format="onnx"``. The file is written by PyTorch's TorchScript-based exporter
(``torch.onnx.export(..., dynamo=False)``, deprecated but present in torch 2.13): it traces
the same unrolled loop and needs no further package, whereas the dynamo-based exporter would
also need ``onnxscript``.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from ..atomic import atomic_path
from .fold import fold, is_folded

__all__ = ["export_model", "InferenceWrapper", "EXPORT_FORMATS", "load_exported"]

EXPORT_FORMATS = ("torch_export", "onnx")


class InferenceWrapper(nn.Module):
    """Forward of a folded SpikeVideoFormer without the data-dependent input checks.

    ``video [B, T, C, H, W]`` → logits (``model.forward`` minus ``check_video``); any other
    module is called as is.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        from ..models.backbone import SpikeVideoFormer

        m = self.model
        if isinstance(m, SpikeVideoFormer):
            if video.dim() == 4:
                video = video.unsqueeze(1)
            return m.forward_head(m._stages(video.transpose(0, 1))[-1])  # [T, B, ...] inside
        return m(video)


def _require_onnx():
    try:
        import onnx  # noqa: F401
    except ImportError as e:
        raise ImportError(
            "ONNX export needs the optional packages onnx and onnxruntime: "
            "pip install onnx onnxruntime  (or: pip install 'spikevideoformer[export]')") from e


def export_model(model: nn.Module, example: torch.Tensor, path: str | os.PathLike,
                 format: str = "torch_export", opset: int | None = None) -> Path:
    """Fold (if needed) and export ``model`` traced on ``example``; returns the written path.

    Args:
        model: a SpikeVideoFormer (trained or already folded); not modified.
        example: an input ``[B, T, C, H, W]``; the exported graph is fixed to its shape
            (T included: the LIF loop is unrolled).
        path: output file (``.pt2`` for torch_export, ``.onnx`` for ONNX), written atomically.
        format: ``"torch_export"`` (``torch.export.export`` + ``torch.export.save``) or
            ``"onnx"`` (``torch.onnx.export``; needs ``onnx``, ``onnxruntime``).
        opset: ONNX opset version (default: the exporter's).
    """
    if format not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {EXPORT_FORMATS}, got {format!r}")
    from ..models.backbone import SpikeVideoFormer, check_video

    if isinstance(model, SpikeVideoFormer):
        check_video(example, model.in_chans)
    if format == "onnx":
        _require_onnx()
    net = model if is_folded(model) else fold(model)
    wrapper = InferenceWrapper(net).eval()
    path = Path(path)
    # the temporary name keeps the real suffix last: torch.export.save expects one ending in .pt2
    with atomic_path(path) as tmp, torch.no_grad():
        if format == "torch_export":
            torch.export.save(torch.export.export(wrapper, (example,)), tmp)
        else:
            kw = {} if opset is None else {"opset_version": opset}
            with warnings.catch_warnings():  # the TorchScript exporter is deprecated
                warnings.simplefilter("ignore", DeprecationWarning)
                torch.onnx.export(wrapper, (example,), tmp, dynamo=False,
                                  input_names=["video"], output_names=["logits"], **kw)
    return path


def load_exported(path: str | os.PathLike) -> nn.Module:
    """Load a ``torch_export`` file as a callable module (``video → logits``)."""
    return torch.export.load(str(path)).module()
