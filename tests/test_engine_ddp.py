"""DDP on CPU (gloo, loopback): 2 processes x B/2 clips == 1 process x B clips.

The two ranks train a BatchNorm-free MLP through the real Trainer (DistributedSampler shards,
DDP gradient averaging, all-reduced metrics, rank-0 checkpoints), stop mid-epoch, rebuild
everything from scratch, resume, and finish.  The result must match a single process trained
on the combined batches to 1e-5.  Rank 0 also records what torch does with SyncBatchNorm on CPU.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import warnings
import weakref

import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import TensorDataset

from spikevideoformer.engine import (Trainer, build_dataloader, cleanup, distributed_run, init_distributed,
                                     load_config, read_jsonl, wrap_model)

WORLD, GLOBAL_BATCH, EPOCHS, STOP_AT = 2, 8, 2, 3



class Task:
    main_metric, higher_is_better = "val_acc", True

    def forward(self, model, batch):
        return model(batch[0])

    def loss(self, output, batch):
        return F.cross_entropy(output, batch[1]), {"acc": (output.argmax(1) == batch[1]).float().mean().item()}

    def evaluate(self, model, loader):
        hits = n = 0
        for x, y in loader:
            hits += (model(x).argmax(1) == y).sum().item()
            n += len(y)
        return {"acc": hits / n, "num_samples": n}


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, 5, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()
    return TensorDataset(x[:32], y[:32]), TensorDataset(x[32:], y[32:])


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 16), nn.LayerNorm(16), nn.ReLU(), nn.Linear(16, 3))


def cfg(out_dir, batch):
    return load_config({"optim": {"lr": 0.05, "epochs": EPOCHS, "warmup_epochs": 0.5, "grad_clip": 0.5},
                        "data": {"batch_size": batch}, "run": {"out_dir": out_dir, "device": "cpu"}})


def trainer(out_dir, batch, info=None):
    c = cfg(out_dir, batch)
    train, val = data()
    tl = build_dataloader(train, batch, info, train=True, seed=c.run.seed)
    vl = build_dataloader(val, 4, info, train=False)
    return Trainer(model(), Task(), c, tl, vl, progress=False)


def _env(rank: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank))
    if sys.platform.startswith("linux"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)


def _worker(rank: int, port: int, out_dir: str) -> None:
    _env(rank, port)
    info = init_distributed("cpu", timeout_s=60)
    assert info.world_size == WORLD and info.rank == rank and info.device.type == "cpu"
    try:
        first = trainer(out_dir, GLOBAL_BATCH // WORLD, info)
        assert first.fit(stop_at_step=STOP_AT)["stopped"]
        del first  # "kill": rebuild model, optimizer, loaders and trainer from scratch
        second = trainer(out_dir, GLOBAL_BATCH // WORLD, info)
        second.resume(os.path.join(out_dir, "last"))
        second.fit()
        del second  # DDP models go before the process group (see engine.cleanup)
        bn = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4))
        with warnings.catch_warnings(record=True) as caught:  # collective: every rank wraps
            warnings.simplefilter("always")
            wrapped = wrap_model(bn, info, sync_bn=True)
        sync = nn.SyncBatchNorm.convert_sync_batchnorm(nn.Sequential(nn.BatchNorm1d(4)))
        try:
            sync(torch.randn(4, 4))
            err = ""
        except ValueError as exc:
            err = str(exc)
        if rank == 0:
            report = {"warned": any("sync_bn" in str(w.message) for w in caught), "sync_error": err,
                      "still_bn": isinstance(wrapped.module[1], nn.BatchNorm1d)}
            with open(os.path.join(out_dir, "syncbn.json"), "w") as f:
                json.dump(report, f)
        del wrapped
    finally:
        cleanup()


def _failing_worker(rank: int, port: int, out_dir: str) -> None:
    """Training that raises inside ``distributed_run``: the DDP model must be freed while the
    group still exists, and the group must be gone afterwards."""
    _env(rank, port)
    seen = {}

    def train_and_fail():
        t = trainer(out_dir, GLOBAL_BATCH // WORLD)
        weakref.finalize(t.model, lambda: seen.setdefault("group_alive_at_ddp_free",
                                                           torch.distributed.is_initialized()))
        assert isinstance(t.model, nn.parallel.DistributedDataParallel)
        t.fit(stop_at_step=1)
        raise ValueError("bad batch")

    try:
        with distributed_run("cpu", timeout_s=60):
            train_and_fail()
    except ValueError as exc:
        seen["error"] = str(exc)
    seen["group_after"] = torch.distributed.is_initialized()
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(seen, f)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(worker, out_dir: str) -> None:
    # spawn, never fork: the pytest process already runs threads (torch's intra-op pool, the
    # native LIF pool), and a child forked from it has hung at exit inside gloo's destructor
    mp.start_processes(worker, args=(_free_port(), out_dir), nprocs=WORLD, join=True,
                       start_method="spawn")


def test_ddp_two_processes_match_single_process(tmp_path):
    ddp_dir = str(tmp_path / "ddp")
    _launch(_worker, ddp_dir)

    single = trainer(str(tmp_path / "single"), GLOBAL_BATCH)
    single.fit()
    ddp_w = load_file(os.path.join(ddp_dir, "last", "model.safetensors"))
    ref_w = single.module.state_dict()
    diff = max((ddp_w[k] - ref_w[k]).abs().max().item() for k in ref_w)
    print(f"max |w_ddp - w_single| = {diff:.3g}")
    assert diff < 1e-5

    ddp_log, ref_log = read_jsonl(os.path.join(ddp_dir, "metrics.jsonl")), single.history
    assert [r["epoch"] for r in ddp_log] == [1, 2] and ddp_log[-1]["step"] == ref_log[-1]["step"] == 8
    for a, b in zip(ddp_log, ref_log):  # metrics are all-reduced over ranks
        for key in ("train_loss", "train_acc", "val_acc", "lr"):
            assert abs(a[key] - b[key]) < 1e-5, key
        assert a["val_num_samples"] == b["val_num_samples"] == 16

    with open(os.path.join(ddp_dir, "syncbn.json")) as f:
        sync = json.load(f)
    assert sync["warned"] and sync["still_bn"]
    assert "GPU" in sync["sync_error"]  # torch's SyncBatchNorm refuses CPU tensors under a process group


def test_distributed_run_frees_ddp_and_destroys_group_on_error(tmp_path):
    out = tmp_path / "fail"
    out.mkdir()
    _launch(_failing_worker, str(out))
    for rank in range(WORLD):
        seen = json.loads((out / f"rank{rank}.json").read_text())
        assert seen["error"] == "bad batch"
        assert seen["group_alive_at_ddp_free"] is True  # freed before destroy_process_group
        assert seen["group_after"] is False
