"""Distributed (DDP) helpers that degrade to no-ops in a single process, and per-process RNG.

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
import random
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler
from torch.utils.data.distributed import DistributedSampler

__all__ = [
    "DistInfo", "resolve_device", "init_distributed", "distributed_run", "get_dist_info", "cleanup",
    "barrier",
    "all_reduce_mean", "all_reduce_sum", "all_gather_objects", "wrap_model", "build_sampler",
    "build_dataloader", "set_loader_epoch", "seed_everything", "capture_rng_state",
    "restore_rng_state", "unwrap_model",
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


def resolve_device(device: str = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"`` -> ``cuda:<local_rank>`` if CUDA is available else ``cpu``; ``"cuda"`` -> ``cuda:<local_rank>``."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        device = f"cuda:{local_rank}"
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available")
    return dev


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


def _strip_prefixes(state: Mapping[str, Any]) -> Dict[str, Any]:
    out = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for p in ("module.", "_orig_mod."):
                if key.startswith(p):
                    key, changed = key[len(p):], True
        out[key] = value
    return out


def build_sampler(dataset: Dataset, info: Optional[DistInfo] = None, shuffle: bool = True,
                  seed: int = 0, drop_last: bool = False) -> DistributedSampler:
    """A :class:`DistributedSampler` (also for a single process, where it is a seeded shuffle).

    The order is a pure function of ``(seed, epoch)`` once ``set_epoch(epoch)`` is called (the
    Trainer does this every epoch), which is what makes resuming exact.
    """
    info = info or get_dist_info("cpu")
    return DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank,
                              shuffle=shuffle, seed=seed, drop_last=drop_last)


def build_dataloader(dataset: Dataset, batch_size: int, info: Optional[DistInfo] = None, *,
                     train: bool = True, seed: int = 0, num_workers: int = 0,
                     collate_fn: Optional[Callable] = None, drop_last: Optional[bool] = None,
                     pin_memory: Optional[bool] = None) -> DataLoader:
    """DataLoader with a :func:`build_sampler` sampler; ``batch_size`` is per process.

    Training loaders shuffle and drop the last incomplete batch by default.  Validation
    loaders do not shuffle; under DDP the sampler pads the last shard by repeating a few clips.

    Workers (``num_workers > 0``) are started with the platform default, ``fork`` on Linux.
    Forking a process that runs threads is safe here because no thread of ours crosses it: the
    native LIF pool joins its threads before every fork (``layers/_lif_native.py``) and torch
    limits each worker to one intra-op thread.  A process that has initialised CUDA must not
    fork: the loader then uses ``spawn`` (the dataset must be picklable).
    """
    info = info or get_dist_info("cpu")
    drop_last = train if drop_last is None else drop_last
    pin_memory = info.device.type == "cuda" if pin_memory is None else pin_memory
    context = "spawn" if num_workers > 0 and torch.cuda.is_initialized() else None
    return DataLoader(dataset, batch_size=batch_size, sampler=build_sampler(dataset, info, train, seed),
                      num_workers=num_workers, collate_fn=collate_fn, drop_last=drop_last,
                      pin_memory=pin_memory, persistent_workers=False, multiprocessing_context=context)


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0] >> 1)


def set_loader_epoch(loader: Any, epoch: int, seed: int, rank: int = 0) -> bool:
    """Make ``loader``'s order and worker seeds a function of ``(seed, epoch, rank)``.

    Calls ``set_epoch`` on samplers that have it (DistributedSampler), gives a plain
    ``RandomSampler`` a generator seeded from ``(seed, epoch)`` and seeds the DataLoader's
    ``generator`` (which draws the workers' base seed) from ``(seed, epoch, rank)``.  Returns
    False if the order may not be reproducible (an unknown sampler without ``set_epoch``).
    """
    if not isinstance(loader, DataLoader):
        for obj in (getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
            if hasattr(obj, "set_epoch"):
                obj.set_epoch(epoch)
                return True
        return False
    bs = loader.batch_sampler
    if bs is None:  # batch_size=None: the sampler yields whole batches
        source = loader.sampler
    else:
        source = bs.sampler if isinstance(bs, BatchSampler) else bs
    if bs is not None and bs is not source and hasattr(bs, "set_epoch"):
        bs.set_epoch(epoch)
    known = True
    if hasattr(source, "set_epoch"):
        source.set_epoch(epoch)
    elif isinstance(source, RandomSampler):
        source.generator = torch.Generator().manual_seed(_seed(seed, epoch, 0x5A3))
    elif not isinstance(source, SequentialSampler):
        known = hasattr(bs, "set_epoch")
    loader.generator = torch.Generator().manual_seed(_seed(seed, epoch, rank, 0x3C7))
    return known


# --------------------------------------------------------------------------- per-process RNG
def seed_everything(seed: int, deterministic: bool = True) -> int:
    """Seed python ``random``, numpy and torch (all devices); optionally deterministic kernels.

    ``deterministic=True`` calls ``torch.use_deterministic_algorithms(True, warn_only=True)``,
    disables cuDNN autotuning and sets ``CUBLAS_WORKSPACE_CONFIG`` if unset.
    """
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    return seed


def capture_rng_state() -> Dict[str, Any]:
    """Torch (CPU + every CUDA device), numpy (global) and python ``random`` states.

    Tensors are uint8; everything else is JSON-able (this is what checkpoints store).
    """
    np_state = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "numpy": {"bit_generator": str(np_state[0]), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4]),
                  "keys": torch.from_numpy(np_state[1].astype("<u4").view(np.uint8).copy())},
        "python": [version, list(internal), gauss],
    }


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state` (CUDA states are restored for the devices present)."""
    torch.set_rng_state(state["torch"].cpu().to(torch.uint8))
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available():
        n = min(len(cuda), torch.cuda.device_count())
        torch.cuda.set_rng_state_all([c.cpu().to(torch.uint8) for c in cuda[:n]])
    npst = state["numpy"]
    keys = np.frombuffer(npst["keys"].cpu().numpy().tobytes(), dtype="<u4").astype(np.uint32)
    np.random.set_state((npst["bit_generator"], keys, npst["pos"], npst["has_gauss"],
                         npst["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
