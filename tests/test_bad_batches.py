"""All-bad batches (every sample unreadable): counted as skipped, kept out of the loss and
metric means, no optimizer step; global_step and the LR schedule still advance (loader
positions), so resume stays exact.  Also under DDP, where one rank's empty batch skips the step
on every rank (instead of hanging the gradient all-reduce)."""
from __future__ import annotations

import json
import os
import socket
import sys

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, IterableDataset, SequentialSampler

from spikevideoformer.data.video_folder import collate_skip_none
from spikevideoformer.engine import Trainer, build_dataloader, cleanup, init_distributed, load_config, read_jsonl
from spikevideoformer.engine.batches import drawn_batch_size
from spikevideoformer.tasks.classification.task import ClassificationTask

N, BATCH, EPOCHS = 22, 4, 2
# batches of 4 in order: [0-3] good, [4-7] all bad, [8-11] half bad, [12-15], [16-19], [20-21] all bad
BAD = {4, 5, 6, 7, 8, 10, 20, 21}


class Clips(Dataset):
    """Labelled vectors; the samples in ``bad`` are unreadable (``None``, like VideoFolder)."""

    def __init__(self, n=N, bad=BAD):
        g = torch.Generator().manual_seed(0)
        self.x, self.y, self.bad = torch.randn(n, 5, generator=g), torch.arange(n) % 3, set(bad)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return None if i in self.bad else (self.x[i], int(self.y[i]))


def make_model(dropout=0.0):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.Dropout(dropout), nn.Linear(8, 3))


def make_trainer(out, lr, model=None, stop_resume=None):
    cfg = load_config({"model": {"num_classes": 3}, "data": {"batch_size": BATCH},
                       "optim": {"lr": lr, "epochs": EPOCHS, "warmup_epochs": 1.0, "grad_clip": 1.0},
                       "run": {"out_dir": str(out), "device": "cpu", "seed": 1}})
    loader = DataLoader(Clips(), batch_size=BATCH, shuffle=False, collate_fn=collate_skip_none)
    return Trainer(model or make_model(), ClassificationTask(3, 0.1), cfg, loader, progress=False)


def test_all_bad_batches_are_counted_and_not_averaged(tmp_path):
    model = make_model()
    with torch.no_grad():  # expected values from the initial model (lr 1e-12: it stays put)
        good = torch.tensor(sorted(set(range(N)) - BAD))
        logits = model(Clips().x[good])
        want_loss = F.cross_entropy(logits, Clips().y[good], label_smoothing=0.1).item()
        want_acc = (logits.argmax(1) == Clips().y[good]).float().mean().item()
    tr = make_trainer(tmp_path / "run", lr=1e-12, model=model)
    tr.fit()
    for rec in tr.history:
        assert rec["skipped_files"] == len(BAD)  # 4 + 2 (all-bad batches) + 2 (partly bad)
        assert rec["empty_batches"] == 2
        assert rec["train_loss"] == pytest.approx(want_loss, rel=1e-6)
        assert rec["train_acc"] == pytest.approx(want_acc, rel=1e-6)
    steps = EPOCHS * 6  # documented: an all-bad batch is a step without update
    assert tr.global_step == steps == tr.history[-1]["step"] and tr.scheduler.last_epoch == steps
    updates = EPOCHS * 4
    assert all(int(s["step"]) == updates for s in tr.optimizer.state.values())


@pytest.mark.parametrize("stop_at", [2, 11])  # after the first all-bad batch; before the last
def test_resume_across_all_bad_batches_is_exact(tmp_path, stop_at):
    ref = make_trainer(tmp_path / "ref", lr=0.05, model=make_model(0.3))
    ref.fit()
    first = make_trainer(tmp_path / "cut", lr=0.05, model=make_model(0.3))
    assert first.fit(stop_at_step=stop_at)["stopped"]
    second = make_trainer(tmp_path / "cut", lr=0.05, model=make_model(0.3))
    second.resume(tmp_path / "cut" / "last")
    second.fit()
    assert second.global_step == ref.global_step == 12
    for k, v in ref.module.state_dict().items():
        assert torch.equal(v, second.module.state_dict()[k]), k
    got = read_jsonl(tmp_path / "cut" / "metrics.jsonl")
    for a, b in zip(got, ref.history):
        for key in ("train_loss", "train_acc", "skipped_files", "empty_batches", "lr", "step"):
            assert a[key] == b[key], key


class Stream(IterableDataset):
    def __iter__(self):
        return iter(range(10))


def test_drawn_batch_size():
    ds = Clips()
    loader = DataLoader(ds, batch_size=BATCH, collate_fn=collate_skip_none)
    assert [drawn_batch_size(loader, i) for i in range(6)] == [4, 4, 4, 4, 4, 2]
    assert drawn_batch_size(DataLoader(ds, batch_size=BATCH, drop_last=True), 4) == 4
    assert drawn_batch_size(DataLoader(Stream(), batch_size=3), 0) == 3  # no length: batch_size
    custom = DataLoader(ds, batch_sampler=BatchSampler(SequentialSampler(ds), BATCH, False))
    assert drawn_batch_size(custom, 0) is None and drawn_batch_size([1, 2], 0) is None


# --------------------------------------------------------------------------- DDP (2 CPU ranks)
# DistributedSampler(shuffle=False): rank 0 gets 0,2,4,..., rank 1 gets 1,3,5,...; batches of 2.
# Rank 1's second batch [5, 7] is all bad, so step 2 is skipped on both ranks (rank 0's [4, 6]
# is not trained on); rank 0's third batch [8, 10] is half bad.
DDP_BAD = {5, 7, 8}


def _ddp_worker(rank, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank))
    if sys.platform.startswith("linux"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    info = init_distributed("cpu", timeout_s=60)
    try:
        cfg = load_config({"model": {"num_classes": 3}, "data": {"batch_size": 2},
                           "optim": {"lr": 1e-12, "epochs": 1, "warmup_epochs": 0, "grad_clip": 1.0},
                           "run": {"out_dir": out, "device": "cpu"}})
        ds = Clips(16, DDP_BAD)
        loader = build_dataloader(ds, 2, info, train=True, collate_fn=collate_skip_none)
        loader.sampler.shuffle = False
        tr = Trainer(make_model(), ClassificationTask(3, 0.1), cfg, loader, progress=False, dist_info=info)
        tr.fit()
        if rank == 0:
            with open(os.path.join(out, "updates.json"), "w") as f:
                json.dump([int(s["step"]) for s in tr.optimizer.state.values()], f)
        del tr
    finally:
        cleanup()


def test_ddp_empty_batch_on_one_rank_skips_the_step_everywhere(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_ddp_worker, args=(port, str(tmp_path)), nprocs=2, join=True, start_method="spawn")
    (rec,) = read_jsonl(tmp_path / "metrics.jsonl")
    assert rec["skipped_files"] == 3 and rec["empty_batches"] == 1 and rec["step"] == 4
    assert set(json.loads((tmp_path / "updates.json").read_text())) == {3}  # 4 steps, 1 empty
    trained = torch.tensor(sorted(set(range(16)) - DDP_BAD - {4, 6}))
    with torch.no_grad():
        ds = Clips(16, DDP_BAD)
        want = F.cross_entropy(make_model()(ds.x[trained]), ds.y[trained], label_smoothing=0.1).item()
    assert rec["train_loss"] == pytest.approx(want, rel=1e-6)


def test_tasks_refuse_an_empty_batch_instead_of_a_zero_loss():
    from spikevideoformer.tasks.segmentation.task import SegmentationTask

    for task in (ClassificationTask(3), SegmentationTask(3)):
        with pytest.raises(ValueError, match="empty batch"):
            task.forward(make_model(), None)
