"""The whole-model bench sections of ``svf bench``: ``ckpt``, ``compile`` and ``fold``.

* ``ckpt`` -- one training step (forward + backward of a summed-logit loss) with and without
  ``model.set_grad_checkpointing(True)``: activation peak memory and step time
  (:func:`measure_grad_checkpointing`, also called by ``benchmarks/grad_checkpointing.py``);
* ``compile`` -- eval inference latency of ``torch.compile(model)`` vs eager (the compile
  itself timed separately);
* ``fold`` -- eval inference latency of the trained graph vs ``deploy.fold(model)``, with the
  fraction of identical spikes.

Candidates are timed interleaved (``time_interleaved``), medians reported, as in
:mod:`.sections`.
"""
from __future__ import annotations

import copy
import time
from typing import Callable

import torch

from ...layers import LIF
from ...layers.inference_neuron import InferenceLIF
from .measure import _cpu_ms, _median, peak_memory, time_interleaved

__all__ = ["measure_grad_checkpointing", "bench_ckpt", "bench_compile", "bench_fold"]


def _create(name: str, seed: int, **kw) -> torch.nn.Module:
    from ...models import create_model
    torch.manual_seed(seed)
    return create_model(name, **kw)


def _ckpt_step(model: torch.nn.Module, video: torch.Tensor) -> None:
    for p in model.parameters():
        if p.grad is not None:
            p.grad.zero_()
    model(video).sum().backward()


def measure_grad_checkpointing(model: str = "svf_15m", frames=(16,), size: int = 64,
                               batch: int = 1, reps: int = 3, device: str = "cpu",
                               seed: int = 0) -> list[dict]:
    """Activation peak memory and step time of one training step, plain vs checkpointed.

    Activation peak: bytes allocated during the step above what was live before it (the
    parameters and their already allocated ``.grad``, zeroed in place, are not counted).
    One row per ``(T, variant)``; ``variant`` is ``plain`` or ``checkpointed``.
    """
    base = _create(model, seed, num_classes=10).train().to(device)
    models = {"plain": base, "checkpointed": copy.deepcopy(base)}
    models["checkpointed"].set_grad_checkpointing(True)
    rows = []
    for T in frames:
        g = torch.Generator().manual_seed(seed + T)
        video = torch.randn(batch, T, 3, size, size, generator=g).to(device)
        steps = {k: (lambda m=m: _ckpt_step(m, video)) for k, m in models.items()}
        for fn in steps.values():  # allocate the .grad tensors outside the measurement
            fn()
        peak = {k: peak_memory(fn, device) for k, fn in steps.items()}
        cpu: dict = {}
        wall = time_interleaved(steps, reps=reps, warmup=0, device=device, cpu_times=cpu)
        for k in models:
            rows.append(dict(section="ckpt", name=k, model=model, batch=batch, T=T, size=size,
                             time_ms=_median(wall[k]) * 1e3, cpu_ms=_cpu_ms(cpu, k, device),
                             act_peak_mb=peak[k] / 2**20, peak_mb=peak[k] / 2**20,
                             reps=len(wall[k])))
    return rows


def bench_ckpt(cfg, log: Callable[[str], None] = print) -> list[dict]:
    """``ckpt`` section: :func:`measure_grad_checkpointing` at ``cfg.ckpt_*``."""
    return measure_grad_checkpointing(cfg.ckpt_model, cfg.ckpt_frames, cfg.ckpt_size,
                                      cfg.ckpt_batch, reps=max(1, min(cfg.reps, 3)),
                                      device=cfg.device, seed=cfg.seed)


def bench_compile(cfg, log: Callable[[str], None] = print) -> list[dict]:
    """``compile`` section: ``torch.compile(model, backend=cfg.compile_backend)`` vs eager."""
    dev = cfg.device
    model = _create(cfg.compile_model, cfg.seed, num_classes=10).eval().to(dev)
    g = torch.Generator().manual_seed(cfg.seed)
    S, T, B = cfg.compile_size, cfg.compile_frames, cfg.batch
    video = torch.randn(B, T, 3, S, S, generator=g).to(dev)
    compiled = torch.compile(model, backend=cfg.compile_backend)
    with torch.no_grad():
        t0 = time.perf_counter()
        out_c = compiled(video)
        compile_s = time.perf_counter() - t0
        out_e = model(video)
    log(f"  compile ({cfg.compile_backend}) took {compile_s:.1f} s")

    def run(m) -> Callable[[], object]:
        def f():
            with torch.no_grad():
                m(video)
        return f

    cands = {"eager": run(model), "compiled": run(compiled)}
    cpu: dict = {}
    times = time_interleaved(cands, reps=max(3 * cfg.reps, 3), warmup=2, device=dev, cpu_times=cpu)
    diff = float((out_c - out_e).abs().max())
    rows = []
    for k in cands:
        rows.append(dict(section="compile", name=k, model=cfg.compile_model, batch=B, T=T, size=S,
                         backend=cfg.compile_backend if k == "compiled" else "eager",
                         time_ms=_median(times[k]) * 1e3, cpu_ms=_cpu_ms(cpu, k, dev),
                         compile_s=compile_s if k == "compiled" else None,
                         max_dlogit=diff, reps=len(times[k])))
    torch._dynamo.reset()
    return rows


def _spikes(model: torch.nn.Module, x: torch.Tensor):
    """Logits and every neuron's 0/1 spikes (``LIF`` scaled by ``1/spike_max``, ``InferenceLIF``
    by ``1/out_scale``)."""
    rec, handles = [], []
    for m in model.modules():
        if isinstance(m, (LIF, InferenceLIF)):
            s = 1 / m.out_scale if isinstance(m, InferenceLIF) else 1 / m.spike_max
            handles.append(m.register_forward_hook(lambda _m, _i, o, s=s: rec.append(o * s)))
    try:
        with torch.no_grad():
            y = model(x)
    finally:
        for h in handles:
            h.remove()
    return y, rec


def bench_fold(cfg, log: Callable[[str], None] = print) -> list[dict]:
    """``fold`` section: eval latency of the trained graph vs ``deploy.fold(model)``."""
    from ...deploy import fold
    from ..energy import calibrate_bn
    dev = cfg.device
    S, T, B = cfg.fold_size, cfg.fold_frames, cfg.batch
    model = _create(cfg.fold_model, cfg.seed, num_classes=400, attention="hamming").eval().to(dev)
    g = torch.Generator().manual_seed(cfg.seed)
    x = torch.randn(B, T, 3, S, S, generator=g).to(dev)
    calibrate_bn(model, x)  # random weights, BN statistics of the input: the network fires
    folded = fold(model)
    (ya, sa), (yb, sb) = _spikes(model, x), _spikes(folded, x)
    same = sum(int((a == b).sum()) for a, b in zip(sa, sb)) / max(sum(a.numel() for a in sa), 1)
    fired = sum(float(a.sum()) for a in sa) / max(sum(a.numel() for a in sa), 1)

    def run(m) -> Callable[[], object]:
        def f():
            with torch.no_grad():
                m(x)
        return f

    cands = {"unfolded": run(model), "folded": run(folded)}
    cpu: dict = {}
    times = time_interleaved(cands, reps=max(3 * cfg.reps, 3), warmup=2, device=dev, cpu_times=cpu)
    rows = []
    for k in cands:
        rows.append(dict(section="fold", name=k, model=cfg.fold_model, batch=B, T=T, size=S,
                         time_ms=_median(times[k]) * 1e3, cpu_ms=_cpu_ms(cpu, k, dev),
                         spike_agreement=same, firing_rate=fired,
                         max_dlogit=float((ya - yb).abs().max()), reps=len(times[k])))
    return rows
