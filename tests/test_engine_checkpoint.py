"""Checkpoints: round trip (model/AdamW/scheduler/RNG), atomicity, no pickle, head dropping."""
from __future__ import annotations

import json
import os
import pickle
import random
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from spikevideoformer.engine import (CheckpointError, WarmupCosineSchedule, load_checkpoint,
                                     load_model_weights, save_checkpoint)
from spikevideoformer.engine import build_optimizer
from spikevideoformer.engine.config import load_config

FILES = {"model.safetensors", "train_state.safetensors", "meta.json"}



def net(classes=5, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv1d(2, 4, 3), nn.BatchNorm1d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6, classes))


def trained(steps=3, classes=5):
    model = net(classes)
    opt = build_optimizer(model, load_config().optim)
    sched = WarmupCosineSchedule(opt, warmup_steps=2, total_steps=10, min_lr_ratio=0.1)
    for _ in range(steps):
        loss = model(torch.randn(4, 2, 8)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model, opt, sched


def draws():
    return torch.rand(4), np.random.rand(3), random.random()


def test_round_trip_model_optimizer_scheduler_rng(tmp_path):
    model, opt, sched = trained()
    path = save_checkpoint(tmp_path / "last", model, opt, sched, epoch=2, step=3,
                           config={"optim": {"lr": 1e-3}}, extra_state={"best": 0.5, "ema": torch.ones(2)})
    expected = draws()  # what the RNG produces right after the save

    model2, opt2, sched2 = trained(steps=0)
    torch.manual_seed(999), np.random.seed(999), random.seed(999)
    meta = load_checkpoint(path, model2, opt2, sched2)
    got = draws()
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]
    assert meta["epoch"] == 2 and meta["step"] == 3 and meta["config"] == {"optim": {"lr": 1e-3}}
    assert meta["extra_state"]["best"] == 0.5 and torch.equal(meta["extra_state"]["ema"], torch.ones(2))
    assert meta["version"] and meta["optimizer"]["param_groups"][0]["betas"] == [0.9, 0.999]
    for k, v in model.state_dict().items():
        assert torch.equal(v, model2.state_dict()[k]), k
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for i in s1["state"]:
        for key in s1["state"][i]:
            assert torch.equal(s1["state"][i][key], s2["state"][i][key])
    assert sched2.state_dict() == sched.state_dict() and sched2.get_last_lr() == sched.get_last_lr()
    # continuing both gives identical parameters
    x = torch.randn(4, 2, 8)
    for m, o in ((model, opt), (model2, opt2)):
        o.zero_grad()
        m(x).square().mean().backward()
        o.step()
    for k, v in model.state_dict().items():
        assert torch.equal(v, model2.state_dict()[k]), k


def test_files_are_safetensors_and_json_never_pickle(tmp_path, monkeypatch):
    model, opt, sched = trained()
    path = save_checkpoint(tmp_path / "ck", model, opt, sched, epoch=0, step=3, config={})
    assert {p.name for p in path.iterdir()} == FILES
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]  # no temp files or backups left
    for name in ("model.safetensors", "train_state.safetensors"):
        raw = (path / name).read_bytes()
        header_len = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8:8 + header_len])
        assert raw[:2] != b"\x80\x04" and isinstance(header, dict)
    train_keys = set(json.loads((path / "train_state.safetensors").read_bytes()[8:][
        :int.from_bytes((path / "train_state.safetensors").read_bytes()[:8], "little")]))
    assert {"optim.state.0.exp_avg", "optim.state.0.step", "rng.0.torch", "rng.0.numpy"} <= train_keys
    json.loads((path / "meta.json").read_text())

    def forbidden(*a, **k):
        raise AssertionError("unpickling is forbidden")
    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    load_checkpoint(path, net(), *trained(steps=0)[1:])


@pytest.mark.parametrize("fail_at", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("persistent", [False, True])
def test_crash_during_save_keeps_previous(tmp_path, monkeypatch, fail_at, persistent):
    """os.replace fails at its n-th call (once, or from then on): step-1 checkpoint survives.

    Calls: 1-3 write files into the staging dir, 4 moves the old dir aside, 5 moves the new one
    in.  With a persistent failure at 5 the rollback fails too and loading recovers the backup.
    """
    m1 = net(seed=1)
    save_checkpoint(tmp_path / "last", m1, epoch=1, step=1, config={})
    real, calls = os.replace, {"n": 0}

    def flaky(src, dst):
        calls["n"] += 1
        if calls["n"] == fail_at or (persistent and calls["n"] > fail_at):
            raise OSError("simulated crash")
        return real(src, dst)
    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(tmp_path / "last", net(seed=2), epoch=2, step=2, config={})
    monkeypatch.setattr(os, "replace", real)
    assert calls["n"] >= fail_at
    m = net(seed=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        meta = load_checkpoint(tmp_path / "last", m)
    recovered = any("interrupted save" in str(w.message) for w in caught)
    assert recovered == (persistent and fail_at == 5)
    assert meta["step"] == 1
    for k, v in m1.state_dict().items():
        assert torch.equal(v, m.state_dict()[k])
    # the next successful save cleans every leftover
    save_checkpoint(tmp_path / "last", net(seed=4), epoch=3, step=3, config={})
    assert [p.name for p in tmp_path.iterdir()] == ["last"]
    assert load_checkpoint(tmp_path / "last", net())["step"] == 3


def test_clear_errors_and_ddp_prefix(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_checkpoint(tmp_path / "nope", net())
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "model.safetensors").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="incomplete"):
        load_checkpoint(tmp_path / "half", net())
    save_checkpoint(tmp_path / "c10", net(10), epoch=0, step=0, config={})
    with pytest.raises(CheckpointError, match=r"4\.weight.*10x24.*5x24"):
        load_checkpoint(tmp_path / "c10", net(5))
    with pytest.raises(CheckpointError, match="optimizer"):  # weights-only checkpoint
        load_checkpoint(tmp_path / "c10", net(10), build_optimizer(net(10), load_config().optim))
    # DataParallel-wrapped model: saved without the `module.` prefix, loads into a bare model
    wrapped = torch.nn.DataParallel(net(seed=7))
    save_checkpoint(tmp_path / "dp", wrapped, epoch=0, step=0, config={})
    bare = net(seed=8)
    load_checkpoint(tmp_path / "dp/model.safetensors", bare)
    assert torch.equal(bare[0].weight, wrapped.module[0].weight.cpu())  # DataParallel moves to cuda:0 if present


def test_load_model_weights_drops_head(tmp_path):
    src = net(classes=10, seed=1)
    save_checkpoint(tmp_path / "pre", src, epoch=0, step=0, config={})
    dst = net(classes=4, seed=2)
    head_before = dst[4].weight.clone()
    report = load_model_weights(tmp_path / "pre", dst)
    assert [d[0] for d in report.dropped] == ["4.weight", "4.bias"]
    assert len(report.loaded) == len(src.state_dict()) - 2 and not report.missing and not report.unexpected
    text = str(report)
    assert "loaded" in text and "dropped" in text and "4.weight [10, 24] in file vs [4, 24] in model" in text
    assert torch.equal(dst[0].weight, src[0].weight) and torch.equal(dst[4].weight, head_before)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_model_weights(tmp_path / "pre/model.safetensors", net(4), drop_mismatched_head=False)
    # a .pth state_dict with DDP prefixes and a wrapper dict, read with weights_only=True
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}, "epoch": 3},
               tmp_path / "w.pth")
    report = load_model_weights(tmp_path / "w.pth", net(classes=4, seed=3))
    assert len(report.dropped) == 2 and len(report.loaded) == len(src.state_dict()) - 2


def test_rgb_stem_adapts_to_event_channels(tmp_path):
    """An RGB checkpoint initialises a 2-channel (event) model: stem filters averaged."""
    import spikevideoformer as svf
    from safetensors.torch import save_file

    rgb = svf.create_model("svf_tiny", num_classes=4)
    path = tmp_path / "rgb.safetensors"
    save_file({k: v.contiguous() for k, v in rgb.state_dict().items()}, str(path))
    ev = svf.create_model("svf_tiny", num_classes=4, in_chans=2)
    report = load_model_weights(path, ev)
    assert [k for k, _, _ in report.adapted] == ["downsample1_1.encode_conv.weight"]
    w_rgb = rgb.downsample1_1.encode_conv.weight
    w_ev = ev.downsample1_1.encode_conv.weight
    # response to a uniform input is preserved: sum over input channels is unchanged
    torch.testing.assert_close(w_ev.sum(1), w_rgb.sum(1))
    torch.testing.assert_close(w_ev[:, 0], w_ev[:, 1])
    assert "adapted" in str(report)
