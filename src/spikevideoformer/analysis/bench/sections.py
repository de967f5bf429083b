"""The ``lif``, ``train`` and ``scaling`` bench sections (``svf bench``) and the run that
writes the files of every section (``ckpt``, ``compile``, ``fold``: :mod:`.model_sections`).

Every candidate of a section is measured in one process, interleaved (warm-up first, then
``reps`` rounds that each run every candidate once; the median is reported), so machine
noise hits all candidates alike:

* ``lif`` -- one multi-step LIF, forward + backward, ours vs SpikingJelly 2.0.0's
  ``LIFNode(tau=2., detach_reset=True, step_mode='m')`` on the same tensor;
* ``train`` -- one full training step (forward + backward + optimizer) of a model with our
  neurons vs the same model with every LIF swapped for :class:`SpikingJellyLIF`;
* ``scaling`` -- inference latency, peak memory and throughput vs ``T`` for the space-time
  designs (:data:`~spikevideoformer.layers.DESIGNS`) and the ANN counterpart (softmax over
  all T·N tokens, ReLU neurons).
"""
from __future__ import annotations

import copy
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from torch import nn

from ...atomic import write_csv as atomic_write_csv
from ...layers import DESIGNS
from ...layers.neuron import LIF, LIFParams, compact_spike_storage, lif_backend_for, lif_multistep, \
    set_lif_backend
from .model_sections import bench_ckpt, bench_compile, bench_fold
from .measure import _cpu_ms, _median, machine_info, peak_memory, time_interleaved, tune_malloc
from .report import VARIANT_TITLES, plot, summarize, write_csv
from .spikingjelly_adapter import spikingjelly_available, swap_to_spikingjelly

__all__ = ["SECTIONS", "DEFAULT_SECTIONS", "VARIANTS", "BenchConfig", "quick_config", "bench_lif", "bench_train",
           "bench_scaling", "run_benchmarks"]

#: every section, in run order; the default run (a few minutes) has the first three, the
#: others are opt-in (``--sections``): ``ckpt`` ~1 min, ``compile`` ~1-2 min (inductor)
SECTIONS = ("lif", "train", "scaling", "ckpt", "compile", "fold")
DEFAULT_SECTIONS = ("lif", "train", "scaling")

#: bench candidates (label -> create_model keyword arguments): every space-time design with
#: SDHA (hamming attention), and the ANN counterpart
VARIANTS: dict[str, dict] = {**{d: dict(attention="hamming", design=d) for d in DESIGNS},
                             "ann": dict(attention="softmax", design="joint", neuron="relu")}


@dataclass
class BenchConfig:
    """What ``svf bench`` measures (defaults: the documented run, ~4-5 min on 2 CPU cores)."""

    device: str = "cpu"
    threads: int | None = 2
    model: str = "svf_tiny"
    # LIF section: input [T, B, C, H, W]
    lif_shape: tuple[int, ...] = (8, 2, 64, 56, 56)
    # training-step section
    train_batch: int = 2
    train_frames: int = 8
    train_size: int = 112
    # scaling section
    frames: tuple[int, ...] = (4, 8, 16, 32)
    size: int = 192
    batch: int = 1
    designs: tuple[str, ...] = tuple(VARIANTS)
    # ckpt section (opt-in): training step with / without grad checkpointing
    ckpt_model: str = "svf_15m"
    ckpt_frames: tuple[int, ...] = (16,)
    ckpt_size: int = 64
    ckpt_batch: int = 1
    # compile section (opt-in): torch.compile vs eager inference (batch: ``batch``)
    compile_model: str = "svf_tiny"
    compile_frames: int = 2
    compile_size: int = 32
    compile_backend: str = "inductor"
    # fold section (opt-in): deploy.fold vs the trained graph, eval (batch: ``batch``)
    fold_model: str = "svf_tiny"
    fold_frames: int = 4
    fold_size: int = 64
    reps: int = 5
    sections: tuple[str, ...] = ("lif", "train", "scaling")
    spikingjelly: bool = True
    seed: int = 0
    tune_malloc: bool = False
    extra: dict = field(default_factory=dict)


def quick_config(**kw) -> BenchConfig:
    """A smoke-test configuration that runs in a few seconds (numbers are not meaningful)."""
    base = dict(lif_shape=(4, 1, 8, 16, 16), train_batch=1, train_frames=2, train_size=16,
                frames=(2, 4), size=16, batch=1, reps=1,
                ckpt_model="svf_tiny", ckpt_frames=(2,), ckpt_size=16,
                compile_frames=1, compile_size=16, compile_backend="aot_eager",
                fold_frames=2, fold_size=16)
    base.update(kw)
    return BenchConfig(**base)


LIF_BYTES_PER_ELEMENT = 24  # fwd: read x, write s and h; bwd: read g and h, write the gradient


def bench_lif(cfg: BenchConfig, log: Callable[[str], None] = print) -> list[dict]:
    """LIF forward + backward: ours (auto backend, and the pure-torch fallback) vs SJ."""
    dev = cfg.device
    g = torch.Generator().manual_seed(cfg.seed)
    x = (torch.randn(*cfg.lif_shape, generator=g) * 1.5 + 0.7).to(dev).requires_grad_()
    gy = torch.randn(*cfg.lif_shape, generator=g).to(dev)
    p = LIFParams()
    cands: dict[str, Callable[[], object]] = {}
    labels: dict[str, str] = {}

    def ours(backend: str) -> Callable[[], object]:
        def f():
            old = set_lif_backend(backend)
            try:
                y = lif_multistep(x, p)
                y.backward(gy)
                del y
                x.grad = None  # freed inside the measured call: every call starts clean
            finally:
                set_lif_backend(old)
        return f

    auto = lif_backend_for(x, p)
    cands["svf"] = ours("auto")
    labels["svf"] = f"spikevideoformer LIF ({auto})"
    if auto != "torch":
        cands["svf_torch"] = ours("torch")
        labels["svf_torch"] = "spikevideoformer LIF (torch fallback)"
    if cfg.spikingjelly and spikingjelly_available():
        from spikingjelly.activation_based import functional, neuron
        node = neuron.LIFNode(tau=2.0, detach_reset=True, step_mode="m")

        def sj():
            functional.reset_net(node)
            y = node(x)
            y.backward(gy)
            functional.reset_net(node)
            del y
            x.grad = None
        cands["sj"] = sj
        labels["sj"] = "SpikingJelly 2.0.0 LIFNode (step_mode='m')"
    elif cfg.spikingjelly:
        log("note: SpikingJelly is not importable; its LIF row is skipped")

    mem = {n: peak_memory(f, dev) for n, f in cands.items()}  # also the warm-up
    cpu: dict = {}
    times = time_interleaved(cands, reps=max(2 * cfg.reps, 5), warmup=0, device=dev, cpu_times=cpu)
    # forward alone (inside autograd, as in training), interleaved as well
    fwd: dict[str, Callable[[], object]] = {}
    for n in cands:
        if n == "sj":
            def f(node=node):
                functional.reset_net(node)
                node(x)
                functional.reset_net(node)
        else:
            def f(backend="torch" if n == "svf_torch" else "auto"):
                old = set_lif_backend(backend)
                try:
                    lif_multistep(x, p)
                finally:
                    set_lif_backend(old)
        fwd[n] = f
    ftimes = time_interleaved(fwd, reps=max(2 * cfg.reps, 5), warmup=0, device=dev)
    elems = x.numel()
    # memory bandwidth: the fused fwd+bwd must read x, g, h and write s, h, grad (6 float32
    # per element); a plain copy of a 3-element-per-neuron buffer moves the same bytes
    src = torch.full((3 * elems,), 0.5, device=dev)
    dst = torch.empty_like(src)
    copy_t = _median(time_interleaved({"copy": lambda: dst.copy_(src)}, reps=max(2 * cfg.reps, 5),
                                      warmup=1, device=dev)["copy"])
    del src, dst
    moved = LIF_BYTES_PER_ELEMENT * elems
    rows = []
    for n in cands:
        t = _median(times[n])
        tf = _median(ftimes[n])
        rows.append(dict(section="lif", name=n, label=labels[n],
                         shape="x".join(map(str, cfg.lif_shape)),
                         elements=elems, time_ms=t * 1e3, cpu_ms=_cpu_ms(cpu, n, dev),
                         fwd_ms=tf * 1e3,
                         bwd_ms=max(t - tf, 0.0) * 1e3, peak_mb=mem[n] / 2**20,
                         bytes_per_element=mem[n] / elems, reps=len(times[n]),
                         backend=auto if n == "svf" else ("torch" if n == "svf_torch" else ""),
                         gb_s=moved / t / 1e9 if t > 0 else None,
                         copy_gb_s=moved / copy_t / 1e9 if copy_t > 0 else None))
    return rows


def _make_model(cfg: BenchConfig, key: str, num_classes: int = 10) -> nn.Module:
    from ...models import create_model
    torch.manual_seed(cfg.seed)
    return create_model(cfg.model, num_classes=num_classes, **VARIANTS[key]).to(cfg.device)


def _same_spiking_outputs(ours: nn.Module, theirs: nn.Module, video: torch.Tensor) -> bool | None:
    """``torch.equal`` of the two models' train-mode outputs (batch statistics make an untrained
    network fire; in eval mode at init most LIF layers are silent and the outputs would be the
    head's bias).  ``None`` if fewer than 5 % of our LIF layers fire at a rate in (0.01, 0.9)."""
    rates: list[float] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: rates.append(float((out != 0).float().mean())))
             for m in ours.modules() if isinstance(m, LIF)]
    a_copy, b_copy = copy.deepcopy(ours).train(), copy.deepcopy(theirs).train()
    try:
        with torch.no_grad():
            a = a_copy(video)
    finally:
        for h in hooks:
            h.remove()
    if sum(0.01 < r < 0.9 for r in rates) < max(1, 0.05 * len(rates)):
        return None
    with torch.no_grad():
        return bool(torch.equal(a, b_copy(video)))


def bench_train(cfg: BenchConfig, log: Callable[[str], None] = print) -> list[dict]:
    """One training step (forward, cross-entropy, backward, SGD step) with our LIF vs SJ's."""
    dev = cfg.device
    g = torch.Generator().manual_seed(cfg.seed)
    B, T, S = cfg.train_batch, cfg.train_frames, cfg.train_size
    video = torch.randn(B, T, 3, S, S, generator=g).to(dev)
    target = torch.randint(0, 10, (B,), generator=g).to(dev)
    models = {"svf": _make_model(cfg, "joint")}
    labels = {"svf": f"{cfg.model} joint SDHA, spikevideoformer LIF",
              "svf_compact": f"{cfg.model} joint SDHA, spikevideoformer LIF "
                             "+ compact_spike_storage"}
    models["svf_compact"] = _make_model(cfg, "joint")
    models["svf_compact"].load_state_dict(models["svf"].state_dict())
    if cfg.spikingjelly and spikingjelly_available():
        m = _make_model(cfg, "joint")
        m.load_state_dict(models["svf"].state_dict())
        n = swap_to_spikingjelly(m)
        models["sj"] = m
        labels["sj"] = f"{cfg.model} joint SDHA, SpikingJelly LIFNode x{n}"
    elif cfg.spikingjelly:
        log("note: SpikingJelly is not importable; its training-step row is skipped")
    opts = {k: torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9) for k, m in models.items()}
    same = None
    if "sj" in models:
        same = _same_spiking_outputs(models["svf"], models["sj"], video)

    def step(k: str) -> Callable[[], object]:
        m, opt = models[k], opts[k]

        def f():
            m.train()
            if k == "svf_compact":
                with compact_spike_storage():
                    loss = nn.functional.cross_entropy(m(video), target)
            else:
                loss = nn.functional.cross_entropy(m(video), target)
            loss.backward()
            opt.step()
            del loss
            opt.zero_grad(set_to_none=True)  # every call starts without gradients
        return f

    cands = {k: step(k) for k in models}
    for f in cands.values():  # first step allocates grads / momentum buffers
        f()
    mem = {k: peak_memory(f, dev) for k, f in cands.items()}
    cpu: dict = {}
    times = time_interleaved(cands, reps=max(cfg.reps, 5) if cfg.reps > 1 else 1, warmup=0,
                             device=dev, cpu_times=cpu)
    rows = []
    for k in models:
        t = _median(times[k])
        rows.append(dict(section="train", name=k, label=labels[k], model=cfg.model, batch=B, T=T,
                         size=S, time_ms=t * 1e3, cpu_ms=_cpu_ms(cpu, k, dev),
                         peak_mb=mem[k] / 2**20,
                         clips_per_s=B / t, outputs_identical=same, reps=len(times[k])))
    return rows


def bench_scaling(cfg: BenchConfig, log: Callable[[str], None] = print) -> list[dict]:
    """Inference latency / peak memory / throughput vs T for every design (eval, no grad)."""
    dev = cfg.device
    B, S = cfg.batch, cfg.size
    models = {k: _make_model(cfg, k).eval() for k in cfg.designs}
    rows = []
    for T in cfg.frames:
        g = torch.Generator().manual_seed(cfg.seed + T)
        video = torch.randn(B, T, 3, S, S, generator=g).to(dev)

        def fwd(k: str) -> Callable[[], object]:
            m = models[k]

            def f():
                with torch.no_grad():
                    m(video)
            return f

        cands = {k: fwd(k) for k in models}
        mem = {k: peak_memory(f, dev) for k, f in cands.items()}  # doubles as warm-up
        cpu: dict = {}
        times = time_interleaved(cands, reps=cfg.reps, warmup=0, device=dev, cpu_times=cpu)
        for k in models:
            t = _median(times[k])
            rows.append(dict(section="scaling", name=k, label=VARIANT_TITLES.get(k, k),
                             model=cfg.model, batch=B, T=T, size=S,
                             tokens_stage3=T * (S // 16) ** 2,
                             time_ms=t * 1e3, cpu_ms=_cpu_ms(cpu, k, dev),
                             peak_mb=mem[k] / 2**20, clips_per_s=B / t,
                             reps=len(times[k])))
        log(f"  scaling T={T}: "
            + ", ".join(f"{k} {_median(times[k]) * 1e3:.0f} ms" for k in models))
    return rows


def run_benchmarks(cfg: BenchConfig, out_dir: str | None = None,
                   log: Callable[[str], None] = print) -> dict:
    """Run the configured sections; write ``bench_*.csv`` and ``bench.png`` into ``out_dir``."""
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but torch.cuda.is_available() is False")
    results: dict = {"machine": machine_info(cfg.device), "config": asdict(cfg)}
    if cfg.tune_malloc:
        results["machine"]["malloc_tuned"] = tune_malloc()
    t0 = time.perf_counter()
    for sec, fn in (("lif", bench_lif), ("train", bench_train), ("scaling", bench_scaling),
                    ("ckpt", bench_ckpt), ("compile", bench_compile), ("fold", bench_fold)):
        if sec in cfg.sections:
            ts = time.perf_counter()
            log(f"[{sec}] running ...")
            results[sec] = fn(cfg, log=log)
            log(f"[{sec}] done in {time.perf_counter() - ts:.1f} s")
    results["summary"] = summarize(results)
    results["wall_s"] = time.perf_counter() - t0
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        for sec in (*SECTIONS, "summary"):
            write_csv(os.path.join(out_dir, f"bench_{sec}.csv"), results.get(sec, []))
        machine = {**results["machine"], "wall_s": f"{results['wall_s']:.1f}"}
        atomic_write_csv(os.path.join(out_dir, "bench_machine.csv"),
                         [{"key": k, "value": v} for k, v in machine.items()])
        plot(results, os.path.join(out_dir, "bench.png"))
    return results
