"""Task-agnostic training loop with exact (bit-identical on CPU) resume and DDP support.

A *task* object supplies everything task specific (see :class:`Task`); the :class:`Trainer`
owns optimisation (AdamW without weight decay on 1-D parameters, per-step warmup + cosine LR,
gradient clipping, optional CUDA AMP), seeding, progress bars, metric logs, checkpoints and
learning curves.  Under ``torchrun`` it runs DDP: rank 0 logs and checkpoints, metrics are all-reduced.

Resume is exact, also in the middle of an epoch: a checkpoint stores the step within the epoch,
the per-rank RNG states and the epoch's running metric sums; the loader order is a function of
``(seed, epoch)`` (:func:`~.loaders.set_loader_epoch`), and on resume the first ``j``
batches of the epoch are skipped -- at the index level with ``num_workers=0`` (no data is
loaded), by replaying them through the workers otherwise (so per-worker augmentation RNGs line
up; this costs loading ``j`` batches).  Exactness needs ``persistent_workers=False`` and the
same world size, batch size and dataset.

A batch with no readable sample (collate returned ``None``) is a step without forward or update
(on every rank under DDP), counted in ``empty_batches``; its samples count as ``skipped_files``,
not in the loss/metric means.  ``global_step`` and the LR schedule advance as for any step: steps
are loader positions, which keeps resume exact.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Union

import torch
from tqdm.auto import tqdm

from ..layers.spike_storage import compact_spike_storage
from .batches import drawn_batch_size, first_tensor, new_epoch_acc, num_skipped
from .checkpoint import (CheckpointError, load_checkpoint, load_model_weights, resolve_checkpoint,
                         save_checkpoint)
from .config import TrainConfig, load_config, save_config, to_dict
from .distributed import (DistInfo, all_gather_objects, all_reduce_sum, barrier, init_distributed,
                          unwrap_model, wrap_model)
from .loaders import set_loader_epoch, skip_batches
from .seeding import capture_rng_state, restore_rng_state, seed_everything
from .stopping import PlateauStopper
from .logger import MetricLogger, plot_curves
from .schedule import WarmupCosineSchedule, build_optimizer, steps_from_epochs
from .task import Task

__all__ = ["Trainer", "seed_everything"]


class Trainer:
    """Generic trainer: ``Trainer(model, task, cfg, train_loader, val_loader).fit()``.

    Args:
        model: an ``nn.Module`` (moved to the run's device; wrapped in DDP when distributed).
        task: an object implementing :class:`Task`.
        cfg: a :class:`TrainConfig` (or anything :func:`load_config` accepts).
        train_loader: a sized iterable of batches; its sampler is re-seeded every epoch.
        val_loader: optional, passed to ``task.evaluate``.
        progress: show a tqdm bar (auto-disabled when stdout is not a TTY; then a text line is
            printed every ``run.log_every`` steps).  ``False`` disables both.
        dist_info: override the result of :func:`init_distributed`.
    """

    def __init__(self, model: torch.nn.Module, task: Task, cfg: Union[TrainConfig, Mapping, str],
                 train_loader: Any, val_loader: Any = None, *, progress: bool = True,
                 dist_info: Optional[DistInfo] = None) -> None:
        self.cfg = cfg if isinstance(cfg, TrainConfig) else load_config(cfg)
        missing = [m for m in ("forward", "loss", "evaluate", "main_metric") if not hasattr(task, m)]
        if missing:
            raise TypeError(f"task {type(task).__name__} lacks {missing} (see spikevideoformer.engine.Task)")
        self.task, self.train_loader, self.val_loader, self.progress = task, train_loader, val_loader, progress
        run, optim = self.cfg.run, self.cfg.optim
        self.dist = dist_info or init_distributed(run.device)
        self.device, self.is_main = self.dist.device, self.dist.is_main
        seed_everything(run.seed + self.dist.rank, run.deterministic)
        if self.cfg.model.init:
            self._print(str(load_model_weights(self.cfg.model.init, model)))
        self.model = wrap_model(model.to(self.device), self.dist, sync_bn=run.sync_bn)
        self.module = unwrap_model(self.model)
        self.optimizer = build_optimizer(self.module, optim)
        try:
            self.steps_per_epoch = len(train_loader)
        except TypeError as exc:
            raise TypeError("train_loader must define __len__ (number of batches per epoch)") from exc
        if self.steps_per_epoch < 1:
            raise ValueError("train_loader yields no batches (dataset smaller than one batch with drop_last?)")
        self.scheduler = WarmupCosineSchedule(
            self.optimizer, **steps_from_epochs(optim.warmup_epochs, optim.epochs, self.steps_per_epoch),
            min_lr_ratio=optim.min_lr_ratio)
        self.amp_dtype: Optional[torch.dtype] = None
        if optim.amp and self.device.type == "cuda":
            self.amp_dtype = getattr(torch, optim.amp_dtype)
        elif optim.amp:
            warnings.warn(f"optim.amp=true ignored on {self.device.type}: AMP is used on CUDA only")
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.out_dir = Path(run.out_dir)
        self.logger = MetricLogger(self.out_dir, enabled=self.is_main)
        self.epoch = self.epoch_step = self.global_step = 0
        self.best_metric: Optional[float] = None
        self.best_epoch: Optional[int] = None
        self.history: List[Dict[str, Any]] = []
        self.stopper = PlateauStopper(run.early_stop_patience, run.early_stop_min_delta,
                                      getattr(task, "higher_is_better", True))
        self._acc = new_epoch_acc()
        self._resumed = self._warned_order = self._warned_size = False

    # ------------------------------------------------------------------ utilities
    def _print(self, msg: str) -> None:
        if self.is_main:
            tqdm.write(msg)

    def _autocast(self):
        return (contextlib.nullcontext() if self.amp_dtype is None
                else torch.autocast(device_type=self.device.type, dtype=self.amp_dtype))

    @property
    def lr(self) -> float:
        """Learning rate of the first parameter group for the next step."""
        return float(self.optimizer.param_groups[0]["lr"])

    def _trainer_state(self) -> Dict[str, Any]:
        return {"epoch": self.epoch, "epoch_step": self.epoch_step, "global_step": self.global_step,
                "steps_per_epoch": self.steps_per_epoch, "world_size": self.dist.world_size,
                "best_metric": self.best_metric, "best_epoch": self.best_epoch,
                "plateau": self.stopper.state_dict()}

    # ------------------------------------------------------------------ checkpoints
    def save(self, name: str = "last") -> Optional[Path]:
        """Checkpoint the current position to ``out_dir/<name>`` (collective under DDP; rank 0 writes)."""
        rng = all_gather_objects(capture_rng_state())
        accs = all_gather_objects(self._acc)
        path = None
        if self.is_main:
            extra = {"trainer": self._trainer_state(), "epoch_acc": accs}
            if self.scaler is not None:
                extra["scaler"] = self.scaler.state_dict()
            path = save_checkpoint(self.out_dir / name, self.model, self.optimizer, self.scheduler,
                                   epoch=self.epoch, step=self.global_step, config=to_dict(self.cfg),
                                   extra_state=extra, rng_states=rng)
        barrier()
        return path

    def resume(self, path: Union[str, os.PathLike] = "auto") -> Optional[Dict[str, Any]]:
        """Restore model, optimizer, scheduler, RNG and loop position from a checkpoint.

        ``path`` is a checkpoint directory, or ``"auto"`` for ``out_dir/last`` if it exists
        (otherwise training starts fresh and ``None`` is returned).  Returns ``meta.json``.
        """
        if str(path) == "auto":
            try:
                path = resolve_checkpoint(self.out_dir / "last")
            except (FileNotFoundError, RuntimeError):
                self._print(f"no checkpoint in {self.out_dir / 'last'}; starting from scratch")
                return None
        meta = load_checkpoint(path, self.model, self.optimizer, self.scheduler, strict=True,
                               restore_rng=True, rank=self.dist.rank)
        extra = meta["extra_state"]
        st = extra.get("trainer")
        if not isinstance(st, Mapping):
            raise CheckpointError(f"cannot resume from {meta['path']}: it holds no trainer state "
                                  f"(use model.init=PATH to start from its weights)")
        if st["epoch_step"] and (st["steps_per_epoch"] != self.steps_per_epoch
                                 or st["world_size"] != self.dist.world_size):
            raise CheckpointError(
                f"cannot resume mid-epoch from {path}: it had {st['steps_per_epoch']} steps/epoch on "
                f"{st['world_size']} process(es), this run {self.steps_per_epoch} on {self.dist.world_size}")
        self.epoch, self.epoch_step, self.global_step = st["epoch"], st["epoch_step"], st["global_step"]
        self.best_metric, self.best_epoch = st["best_metric"], st["best_epoch"]
        self.stopper.load_state_dict(st.get("plateau"))
        accs = extra.get("epoch_acc") or [{}]
        self._acc = {**new_epoch_acc(), **(accs[self.dist.rank] if self.dist.rank < len(accs) else {})}
        if self.scaler is not None and "scaler" in extra:
            self.scaler.load_state_dict(extra["scaler"])
        self.logger.truncate(after_epoch=self.epoch)
        self.history = self.logger.records if self.is_main else []
        self._resumed = True
        self._print(f"resumed from {meta['path']} at epoch {self.epoch + 1}, step {self.global_step}"
                    + (f" ({self.epoch_step}/{self.steps_per_epoch} into the epoch)" if self.epoch_step else ""))
        return meta

    # ------------------------------------------------------------------ loop
    def fit(self, stop_at_step: Optional[int] = None) -> Dict[str, Any]:
        """Train until ``optim.epochs`` are done (resuming first if ``run.resume`` is set).

        ``stop_at_step``: stop once ``global_step`` reaches it, write ``out_dir/last`` (a
        mid-epoch checkpoint) and return ``{"stopped": True, "epoch", "step"}``; the schedule
        is unaffected, so resuming continues exactly as an uninterrupted run.

        Returns the last epoch record (``train_*``, ``val_*``, ``lr``, ...) plus ``best_metric``,
        ``best_epoch`` and ``main_metric``.
        """
        if self.cfg.run.resume and not self._resumed:
            self.resume(self.cfg.run.resume)
        if self.is_main:
            save_config(self.cfg, self.out_dir / "config.yaml")
        while self.epoch < self.cfg.optim.epochs and not self.stopper.stopped:
            if stop_at_step is not None and self.global_step >= stop_at_step:
                break
            if self._train_epoch(stop_at_step):  # stopped inside the epoch
                break
            self._end_epoch()
        if stop_at_step is not None and self.epoch < self.cfg.optim.epochs and not self.stopper.stopped:
            self.save("last")
            return {"stopped": True, "epoch": self.epoch, "step": self.global_step}
        if self.is_main and self.logger.jsonl_path.is_file():
            try:  # curves are a convenience: never fail a finished run over them
                plot_curves(self.logger.jsonl_path, self.out_dir / "curves.png")
            except Exception as exc:  # e.g. matplotlib missing
                warnings.warn(f"could not plot learning curves: {exc!r}")
        barrier()
        final = dict(self.history[-1]) if self.history else {}
        final.update(best_metric=self.best_metric, best_epoch=self.best_epoch, main_metric=self.task.main_metric,
                     stopped_early=self.stopper.stopped and self.epoch < self.cfg.optim.epochs)
        return final

    def _epoch_iterator(self) -> Iterator:
        ordered = set_loader_epoch(self.train_loader, self.epoch, self.cfg.run.seed, self.dist.rank)
        if not ordered and not self._warned_order:
            self._warned_order = True
            warnings.warn("train_loader's sampler has no set_epoch(); shuffling may not be a function "
                          "of (seed, epoch) and resume may not be exact")
        return skip_batches(self.train_loader, self.epoch_step)

    def _train_epoch(self, stop_at_step: Optional[int]) -> bool:
        """Run the (rest of the) current epoch; True if it stopped early at ``stop_at_step``."""
        epochs, spe, log_every = self.cfg.optim.epochs, self.steps_per_epoch, self.cfg.run.log_every
        if self.epoch_step == 0:
            self._acc = new_epoch_acc()
        it = self._epoch_iterator()
        self.model.train()
        bar = tqdm(total=spe, initial=self.epoch_step, desc=f"epoch {self.epoch + 1}/{epochs}", leave=False,
                   dynamic_ncols=True, disable=True if not (self.progress and self.is_main) else None)
        t0, n0 = time.perf_counter(), self._acc["n"]
        stopped = False
        for batch in it:
            self._train_step(batch)
            acc, n = self._acc, max(1, self._acc["n"])
            speed = (acc["n"] - n0) * self.dist.world_size / max(1e-9, time.perf_counter() - t0)
            stats = {"loss": acc["loss"] / n, **{k: v / n for k, v in acc["metrics"].items()}}
            bar.update(1)
            bar.set_postfix({**{k: f"{v:.4g}" for k, v in stats.items()}, "lr": f"{self.lr:.3g}",
                             "clips/s": f"{speed:.1f}"}, refresh=False)
            if self.progress and bar.disable and self.is_main and self.epoch_step % log_every == 0:
                self._print(f"epoch {self.epoch + 1}/{epochs} step {self.epoch_step}/{spe} "
                            + " ".join(f"{k} {v:.4f}" for k, v in stats.items())
                            + f" lr {self.lr:.3e} clips/s {speed:.1f}")
            if stop_at_step is not None and self.global_step >= stop_at_step and self.epoch_step < spe:
                stopped = True
                break
        bar.close()
        self._acc["time"] = self._acc.get("time", 0.0) + time.perf_counter() - t0
        if not stopped and self.epoch_step != spe:
            warnings.warn(f"train_loader yielded {self.epoch_step} batches, len() promised {spe}")
        return stopped

    def _advance(self) -> None:
        with warnings.catch_warnings():  # a skipped first update is intended: keep the schedule
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            self.scheduler.step()
        self.global_step += 1
        self.epoch_step += 1

    def _train_step(self, batch: Any) -> None:
        empty = batch is None  # every sample of the batch was unreadable (see engine.batches)
        if self.dist.world_size > 1:  # DDP reduces gradients jointly: all ranks skip together
            empty = bool(all_reduce_sum(torch.tensor([float(empty)], device=self.device)).item())
        if empty:  # no forward, no update; the schedule and step counters still advance
            n = drawn_batch_size(self.train_loader, self.epoch_step) if batch is None else 0
            if n is None and not self._warned_size:
                self._warned_size = True
                warnings.warn("an all-bad batch was skipped but train_loader has no batch_size: "
                              "skipped_files does not count its samples")
            self._acc["skipped"] += (n or 0) + num_skipped(batch)
            self._acc["empty_steps"] += 1
            self._advance()
            return
        with self._autocast(), compact_spike_storage(self.cfg.optim.compact_spikes):
            output = self.task.forward(self.model, batch)
            loss, metrics = self.task.loss(output, batch)
        value = float(loss.detach())
        if not math.isfinite(value) and self.scaler is None:
            raise FloatingPointError(f"loss is {value} at epoch {self.epoch + 1}, step {self.global_step}")
        self.optimizer.zero_grad(set_to_none=True)
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
        clip = self.cfg.optim.grad_clip
        if clip:
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)
            norm = float(torch.nn.utils.clip_grad_norm_(self.module.parameters(), clip))
            finite = math.isfinite(norm)
            if finite:
                self._acc["grad_norm"] += norm
                self._acc["clip_steps"] += 1
        else:
            finite = True
        if self.scaler is not None:  # the scaler skips non-finite steps itself
            self.scaler.step(self.optimizer)
            self.scaler.update()
        elif finite:
            self.optimizer.step()
        else:  # clipping would scale every gradient by 0 (or to NaN): skip the update, count it
            self.optimizer.zero_grad(set_to_none=True)
            self._acc["nonfinite_steps"] = self._acc.get("nonfinite_steps", 0) + 1
        self._advance()
        t = first_tensor(batch)
        n = int(t.shape[0]) if t is not None else int(getattr(self.train_loader, "batch_size", 1) or 1)
        acc = self._acc
        acc["n"] += n
        acc["loss"] += value * n
        for k, v in metrics.items():
            acc["metrics"][k] = acc["metrics"].get(k, 0.0) + float(v) * n
        acc["skipped"] += num_skipped(batch)

    def _end_epoch(self) -> Dict[str, Any]:
        acc, keys = self._acc, sorted(self._acc["metrics"])
        vec = torch.tensor([acc["n"], acc["loss"], acc["grad_norm"], acc["clip_steps"], acc["skipped"]]
                           + [acc["metrics"][k] for k in keys], dtype=torch.float64, device=self.device)
        vec = all_reduce_sum(vec).tolist()
        n = max(1.0, vec[0])
        record: Dict[str, Any] = {"epoch": self.epoch + 1, "step": self.global_step,
                                  "lr": float(self.scheduler.get_last_lr()[0]), "train_loss": vec[1] / n}
        record.update({f"train_{k}": v / n for k, v in zip(keys, vec[5:])})
        if vec[3]:
            record["grad_norm"] = vec[2] / vec[3]
        record["skipped_files"] = int(vec[4])
        empty = record["empty_batches"] = int(acc.get("empty_steps", 0))  # equal on every rank
        elapsed = acc.get("time", 0.0)
        record["epoch_time_s"] = round(elapsed, 3)
        record["clips_per_s"] = round(vec[0] / elapsed, 2) if elapsed > 0 else None
        # gradients are all-reduced before clipping, so every rank skips the same steps
        nonfinite = record["nonfinite_grad_steps"] = int(acc.get("nonfinite_steps", 0))
        if vec[4]:
            self._print(f"{int(vec[4])} files skipped this epoch"
                        + (f"; {empty} step(s) had no readable clip and made no update" if empty else ""))
        if nonfinite:
            self._print(f"warning: {nonfinite} of {self.epoch_step} steps this epoch had a non-finite "
                        "gradient norm and were skipped (exploding gradients; try a lower lr)")
        epochs = self.cfg.optim.epochs
        last = self.epoch + 1 == epochs
        if self.val_loader is not None and ((self.epoch + 1) % self.cfg.run.eval_every == 0 or last):
            record.update(self.evaluate())
        self.epoch += 1
        self.epoch_step = 0
        self._acc = new_epoch_acc()
        key = self.task.main_metric
        value = record.get(key, record.get(f"val_{key}"))
        better = getattr(self.task, "higher_is_better", True)
        is_best = value is not None and math.isfinite(value) and (
            self.best_metric is None or (value > self.best_metric if better else value < self.best_metric))
        if is_best:
            self.best_metric, self.best_epoch = float(value), self.epoch
        if self.best_metric is not None:
            record["best_metric"] = self.best_metric
        if self.stopper.update(value) and not last:
            record["early_stop"] = True  # plateau: run.early_stop_patience validations, no gain
        self.logger.log(record)
        self.history.append(record)
        self._print(f"epoch {self.epoch}/{epochs} " + " ".join(
            f"{k} {v:.4g}" for k, v in record.items()
            if isinstance(v, float) and k not in ("epoch_time_s", "clips_per_s")))
        if record.get("early_stop"):
            self._print(f"stopping early: {key} did not improve by more than "
                        f"{self.stopper.min_delta:g} in {self.stopper.stale} validations")
        if self.epoch % self.cfg.run.save_every == 0 or last or record.get("early_stop"):
            self.save("last")
        if is_best:
            self.save("best")
        return record

    @torch.no_grad()
    def evaluate(self) -> Dict[str, float]:
        """Run ``task.evaluate`` on the validation loader; returns ``val_*`` metrics (all-reduced).

        The RNG states are saved and restored around evaluation, so how often one evaluates
        never changes the training trajectory.
        """
        if self.val_loader is None:
            return {}
        rng = capture_rng_state()
        was_training = self.module.training
        self.module.eval()
        try:
            with self._autocast():
                metrics = dict(self.task.evaluate(self.module, self.val_loader))
        finally:
            self.module.train(was_training)
            restore_rng_state(rng)
        keys = sorted(k for k in metrics if k != "num_samples")
        weight = float(metrics.get("num_samples", 1.0))
        vec = torch.tensor([weight] + [float(metrics[k]) * weight for k in keys], dtype=torch.float64,
                           device=self.device)
        vec = all_reduce_sum(vec).tolist()
        out = {(k if k.startswith("val_") else f"val_{k}"): v / max(vec[0], 1e-12) for k, v in zip(keys, vec[1:])}
        if "num_samples" in metrics:
            out["val_num_samples"] = int(vec[0])
        return out
