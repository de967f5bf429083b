"""Distributed (DDP) helpers that degrade to no-ops in a single process.

Launch with ``torchrun --nproc_per_node N train.py``; :func:`init_distributed` reads ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK``, picks ``nccl`` on CUDA and ``gloo`` on CPU and returns a
:class:`DistInfo`.  Without torchrun it returns ``world_size == 1`` and initialises nothing.

BatchNorm under DDP: plain ``BatchNorm`` normalises each process's shard with that shard's
statistics, so N processes x B/N clips are *not* equivalent to one process x B clips (running
statistics are those of rank 0, broadcast by DDP).  ``sync_bn=True`` converts to
``SyncBatchNorm``, which all-reduces the statistics and restores equivalence -- but only on
accelerators: in torch 2.x (checked with 2.13) ``SyncBatchNorm.forward`` raises
``ValueError("SyncBatchNorm expected input tensor to be on GPU ...")`` for CPU tensors while a
process group is active, so :func:`wrap_model` keeps plain BatchNorm on CPU and warns.
"""
from __future__ import annotations

import contextlib
import datetime
import gc
import os
import traceback
import warnings
from dataclasses import dataclass
from typing import Any, Iterator, List, Optional

import torch
import torch.distributed as dist

from .device import resolve_device

__all__ = [
    "DistInfo", "init_distributed", "distributed_run", "get_dist_info", "cleanup", "barrier",
    "all_reduce_mean", "all_reduce_sum", "all_gather_objects", "wrap_model", "unwrap_model",
]


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only rank that logs, plots and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _active() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_dist_info(device: str = "auto") -> DistInfo:
    """:class:`DistInfo` of the current process (initialises nothing)."""
    if not _active():
        return DistInfo(device=resolve_device(device, 0))
    rank, world = dist.get_rank(), dist.get_world_size()
    local = int(os.environ.get("LOCAL_RANK", rank % max(1, torch.cuda.device_count() or 1)))
    return DistInfo(rank, world, local, resolve_device(device, local))


def init_distributed(device: str = "auto", backend: Optional[str] = None,
                     timeout_s: float = 1800.0) -> DistInfo:
    """Initialise the default process group from torchrun's environment (idempotent).

    Returns ``DistInfo(rank=0, world_size=1)`` without touching ``torch.distributed`` when
    ``WORLD_SIZE`` is unset or 1.  Backend: ``nccl`` for CUDA devices, ``gloo`` otherwise.
    """
    if _active():
        return get_dist_info(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(device=resolve_device(device, 0))
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    dev = resolve_device(device, local)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(backend or ("nccl" if dev.type == "cuda" else "gloo"), init_method="env://",
                            rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=timeout_s))
    return DistInfo(rank, world, local, dev)


def cleanup() -> None:
    """Destroy the default process group if one is active.

    Free every DistributedDataParallel model first (``del trainer``): a DDP reducer that
    outlives the group destroys the gloo backend later, from its own destructor, and that
    join of the backend's threads has been seen to hang at process exit.
    """
    if _active():
        gc.collect()  # DDP reducers caught in reference cycles go before the group they use
        dist.destroy_process_group()


@contextlib.contextmanager
def distributed_run(device: str = "auto", timeout_s: float = 1800.0) -> Iterator[DistInfo]:
    """``with distributed_run(device) as info:`` -- :func:`init_distributed` for one job.

    On exit, normal or by an exception, the process group is destroyed if this call created
    it.  On an exception the finished frames of its traceback are cleared first, so that a
    trainer (and its DDP model) held by a local variable is freed before the group.
    """
    created = not _active()
    info = init_distributed(device, timeout_s=timeout_s)
    try:
        yield info
    except BaseException as exc:
        traceback.clear_frames(exc.__traceback__)
        raise
    finally:
        if created:
            cleanup()


def barrier() -> None:
    """Synchronise all ranks (no-op in a single process)."""
    if _active() and dist.get_world_size() > 1:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum of ``tensor`` over ranks (a new tensor; the input is returned unchanged if single-process)."""
    if not _active() or dist.get_world_size() == 1:
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of ``tensor`` over ranks (identity in a single process)."""
    if not _active() or dist.get_world_size() == 1:
        return tensor
    return all_reduce_sum(tensor) / dist.get_world_size()


def all_gather_objects(obj: Any) -> List[Any]:
    """``[obj_rank0, obj_rank1, ...]`` (``[obj]`` in a single process).

    Uses ``torch.distributed.all_gather_object`` (in-memory pickling between this job's own
    processes; nothing read from disk is ever unpickled).
    """
    if not _active() or dist.get_world_size() == 1:
        return [obj]
    out: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def wrap_model(model: torch.nn.Module, info: DistInfo, sync_bn: bool = False,
               find_unused_parameters: bool = False) -> torch.nn.Module:
    """Wrap ``model`` (already on ``info.device``) in DistributedDataParallel when ``world_size > 1``.

    ``sync_bn=True`` converts BatchNorm layers to SyncBatchNorm on accelerators; on CPU it warns
    and keeps per-process BatchNorm (see module docstring).  Single process: returned unchanged.
    """
    if not info.distributed:
        return model
    if sync_bn:
        if info.device.type == "cpu":
            warnings.warn("sync_bn=True ignored on CPU: torch's SyncBatchNorm only supports "
                          "GPU/XPU tensors; BatchNorm statistics stay per-process")
        else:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [info.device.index] if info.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids,
                                                     find_unused_parameters=find_unused_parameters)


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """Strip DistributedDataParallel/DataParallel (``.module``) and ``torch.compile`` wrappers."""
    while True:
        if isinstance(model, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, torch.nn.Module):
            model = model._orig_mod
        else:
            return model
