"""DataLoaders whose order is a pure function of ``(seed, epoch, rank)`` (exact resume, DDP shards)."""
from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np
import torch
from torch.utils.data import (BatchSampler, DataLoader, Dataset, IterableDataset, RandomSampler,
                              SequentialSampler)
from torch.utils.data.distributed import DistributedSampler

from .distributed import DistInfo, get_dist_info
from .seeding import capture_rng_state, restore_rng_state

__all__ = ["build_sampler", "build_dataloader", "set_loader_epoch", "skip_batches"]


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


def skip_batches(loader: Any, skip: int):
    """An iterator over ``loader`` that starts at batch ``skip`` (exact mid-epoch resume).

    With ``num_workers = 0`` and a map-style dataset the first ``skip`` batches are skipped at
    the index level (nothing is loaded); otherwise they are replayed through the workers, so
    per-worker augmentation RNGs line up. Skipping never consumes the training RNG streams.
    """
    it = iter(loader)
    if skip:
        rng = capture_rng_state()
        sampler_iter = getattr(it, "_sampler_iter", None)
        map_style = not isinstance(getattr(loader, "dataset", None), IterableDataset)
        if getattr(loader, "num_workers", 1) == 0 and map_style and sampler_iter is not None:
            for _ in range(skip):
                next(sampler_iter)  # index-level skip
            it._num_yielded += skip
        else:
            for _ in range(skip):
                next(it)  # replay through the workers
        restore_rng_state(rng)
    return it
