"""Side-by-side efficiency benchmarks (``svf bench``; docs/design.md §5.4).

Everything is measured in one process, in one run, with the candidates interleaved
(warm-up first, then ``reps`` rounds that each run every candidate once; the median is
reported), so machine noise hits all candidates alike. Three sections:

* ``lif`` — one multi-step LIF, forward + backward, ours vs SpikingJelly 2.0.0's
  ``LIFNode(tau=2., detach_reset=True, step_mode='m')`` on the same tensor;
* ``train`` — one full training step (forward + backward + optimizer) of a model with our
  neurons vs the same model with every LIF swapped for :class:`SpikingJellyLIF`;
* ``scaling`` — inference latency, peak memory and throughput vs ``T`` for the joint SDHA,
  spatial-only, factorized and hierarchical designs and the ANN counterpart (softmax over
  all T·N tokens, ReLU neurons).

Peak memory. On CUDA: ``torch.cuda.max_memory_allocated`` after a reset, minus the memory
allocated before the measured call. On CPU there is no allocator high-water mark, so the
measured call runs once under ``torch.profiler`` with ``profile_memory=True``; every
allocation and free of the PyTorch CPU allocator is an event with a signed byte count, and
the peak is the maximum of their running sum (bytes above what was live before the call:
inputs, parameters and optimizer state are not counted, outputs and gradients are).
That profiled run doubles as the warm-up; timed runs are never profiled.
"""
from __future__ import annotations

import copy

import logging
import math
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from torch import nn

from ..atomic import write_csv as atomic_write_csv
from ..layers.neuron import LIF, LIFParams, compact_spike_storage, get_lif_backend, \
    lif_backend_for, lif_multistep, set_lif_backend

__all__ = [
    "BenchConfig", "QUICK", "machine_info", "peak_memory", "time_interleaved",
    "SpikingJellyLIF", "swap_to_spikingjelly", "spikingjelly_available", "bench_lif",
    "bench_train", "bench_scaling", "summarize", "run_benchmarks", "format_report", "plot",
    "write_csv", "DESIGNS",
]

# label -> create_model keyword arguments
DESIGNS: dict[str, dict] = {
    "joint": dict(attention="hamming", design="joint"),
    "spatial": dict(attention="hamming", design="spatial"),
    "factorized": dict(attention="hamming", design="factorized"),
    "hierarchical": dict(attention="hamming", design="hierarchical"),
    "ann": dict(attention="softmax", design="joint", neuron="relu"),
}
DESIGN_TITLES = {
    "joint": "joint SDHA (ours)", "spatial": "spatial-only SDHA", "factorized": "factorized SDHA",
    "hierarchical": "hierarchical SDHA", "ann": "ANN (softmax, joint, ReLU)",
}


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
    designs: tuple[str, ...] = tuple(DESIGNS)
    reps: int = 5
    sections: tuple[str, ...] = ("lif", "train", "scaling")
    spikingjelly: bool = True
    seed: int = 0
    tune_malloc: bool = False
    extra: dict = field(default_factory=dict)


def QUICK(**kw) -> BenchConfig:
    """A smoke-test configuration that runs in a few seconds (numbers are not meaningful)."""
    base = dict(lif_shape=(4, 1, 8, 16, 16), train_batch=1, train_frames=2, train_size=16,
                frames=(2, 4), size=16, batch=1, reps=1)
    base.update(kw)
    return BenchConfig(**base)


# --------------------------------------------------------------------------- machine
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str = "cpu") -> dict:
    """CPU model, threads, torch version (and GPU name on CUDA) of this run."""
    info = {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "lif_backend": get_lif_backend(),
    }
    try:
        info["loadavg"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except (OSError, AttributeError):
        pass
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    info["spikingjelly"] = _sj_version()
    return info


def _sj_version() -> str | None:
    try:
        import spikingjelly
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return None
    try:
        from importlib.metadata import version
        return version("spikingjelly")
    except Exception:  # noqa: BLE001 - e.g. a copied package without metadata
        return getattr(spikingjelly, "__version__", "installed")


def spikingjelly_available() -> bool:
    # SpikingJelly registers Triton ops at import; without Triton torch logs a warning per op
    logging.getLogger("torch._library.triton").setLevel(logging.ERROR)
    try:
        from spikingjelly.activation_based import functional, neuron  # noqa: F401
        return True
    except Exception:  # noqa: BLE001
        return False


# --------------------------------------------------------------------------- measuring
def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class _quiet_stderr:
    """Silence file descriptor 2 (C++ log lines) for a moment; no-op where it cannot."""

    def __enter__(self):
        self.saved = None
        try:
            import sys
            sys.stderr.flush()
            self.devnull = os.open(os.devnull, os.O_WRONLY)
            self.saved = os.dup(2)
            os.dup2(self.devnull, 2)
        except (OSError, ValueError, AttributeError):
            self.saved = None
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            os.dup2(self.saved, 2)
            os.close(self.saved)
            os.close(self.devnull)


def peak_memory(fn: Callable[[], object], device: str = "cpu") -> int:
    """Peak bytes allocated by ``fn()`` above what was live before it (see module doc)."""
    if device.startswith("cuda"):
        _sync(device)
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        _sync(device)
        return int(torch.cuda.max_memory_allocated() - base)
    from torch.profiler import ProfilerActivity, profile
    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _quiet_stderr():  # the profiler prints start/stop lines on fd 2
        prof.__enter__()
    try:
        fn()
    finally:
        with _quiet_stderr():
            prof.__exit__(None, None, None)
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]" and "CPU" in str(e.device_type()).upper())
    cur = peak = 0
    for _, nbytes in events:
        cur += nbytes
        peak = max(peak, cur)
    return int(peak)


def time_interleaved(fns: dict[str, Callable[[], object]], reps: int = 3, warmup: int = 1,
                     device: str = "cpu", cpu_times: dict | None = None) -> dict[str, list[float]]:
    """Run every candidate ``warmup`` times, then ``reps`` rounds of one call each (order
    rotated every round); returns the wall times in seconds per candidate. If ``cpu_times`` is
    a dict it receives the process CPU times of the same calls (``time.process_time``: robust
    to other programs taking the cores; equal to wall time for single-threaded work on an idle
    machine)."""
    names = list(fns)
    for _ in range(warmup):
        for n in names:
            fns[n]()
    out: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for r in range(reps):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            _sync(device)
            c0, t0 = time.process_time(), time.perf_counter()
            fns[n]()
            _sync(device)
            out[n].append(time.perf_counter() - t0)
            cpu[n].append(time.process_time() - c0)
    if cpu_times is not None:
        cpu_times.update(cpu)
    return out


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def _cpu_ms(cpu: dict, name: str, device: str) -> float | None:
    """Median process CPU time in ms (CPU runs only; meaningless for GPU work)."""
    if device.startswith("cuda") or not cpu.get(name):
        return None
    return _median(cpu[name]) * 1e3


# --------------------------------------------------------------------------- SpikingJelly
class SpikingJellyLIF(nn.Module):
    """SpikingJelly's multi-step ``LIFNode`` with the parameters of one of our :class:`LIF`
    modules, reset before and after every call (so no state survives a call, like ours)."""

    def __init__(self, lif: LIF) -> None:
        super().__init__()
        from spikingjelly.activation_based import neuron, surrogate
        p: LIFParams = lif.params
        if p.spike_max != 1:
            raise ValueError("SpikingJelly's LIFNode has no Integer-LIF (spike_max > 1)")
        self.temporal_state = lif.temporal_state
        self.node = neuron.LIFNode(
            tau=float(p.tau), decay_input=p.decay_input, v_threshold=float(p.v_th),
            v_reset=None if p.soft_reset else float(p.v_reset),
            surrogate_function=surrogate.Sigmoid(alpha=float(p.alpha)),
            detach_reset=p.detach_reset, step_mode="m")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.node.reset()
        if not self.temporal_state:
            y = self.node(x.reshape(1, -1, *x.shape[2:])).reshape(x.shape)
        else:
            y = self.node(x)
        self.node.reset()
        return y


def swap_to_spikingjelly(model: nn.Module) -> int:
    """Replace every :class:`LIF` inside ``model`` by a :class:`SpikingJellyLIF` (in place);
    returns how many were swapped."""
    n = 0
    for name, child in list(model.named_children()):
        if isinstance(child, LIF):
            setattr(model, name, SpikingJellyLIF(child))
            n += 1
        else:
            n += swap_to_spikingjelly(child)
    return n


# --------------------------------------------------------------------------- sections
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
    rows = []
    for n in cands:
        t = _median(times[n])
        tf = _median(ftimes[n])
        rows.append(dict(section="lif", name=n, label=labels[n],
                         shape="x".join(map(str, cfg.lif_shape)),
                         elements=elems, time_ms=t * 1e3, cpu_ms=_cpu_ms(cpu, n, dev),
                         fwd_ms=tf * 1e3,
                         bwd_ms=max(t - tf, 0.0) * 1e3, peak_mb=mem[n] / 2**20,
                         bytes_per_element=mem[n] / elems, reps=len(times[n])))
    return rows


def _make_model(cfg: BenchConfig, key: str, num_classes: int = 10) -> nn.Module:
    from ..models import create_model
    torch.manual_seed(cfg.seed)
    return create_model(cfg.model, num_classes=num_classes, **DESIGNS[key]).to(cfg.device)


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
            rows.append(dict(section="scaling", name=k, label=DESIGN_TITLES.get(k, k),
                             model=cfg.model, batch=B, T=T, size=S,
                             tokens_stage3=T * (S // 16) ** 2,
                             time_ms=t * 1e3, cpu_ms=_cpu_ms(cpu, k, dev),
                             peak_mb=mem[k] / 2**20, clips_per_s=B / t,
                             reps=len(times[k])))
        log(f"  scaling T={T}: "
            + ", ".join(f"{k} {_median(times[k]) * 1e3:.0f} ms" for k in models))
    return rows


# --------------------------------------------------------------------------- summary
def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def summarize(results: dict) -> list[dict]:
    """The goals of the efficiency work as rows ``(goal, value, target, met)``."""
    out = []

    def add(goal: str, value: float | None, target: str,
            ok: Callable[[float], bool] | None) -> None:
        out.append(dict(goal=goal, value=value, target=target,
                        met=None if value is None or ok is None else bool(ok(value))))

    def both(rows: dict, a: str, b: str, goal: str, target: str, ok, inverse: bool = False):
        """Add the wall-time ratio and, on CPU runs, the CPU-time ratio."""
        for key, tag in (("time_ms", ""), ("cpu_ms", " [CPU time]")):
            x, y = rows[a].get(key), rows[b].get(key)
            if key == "cpu_ms" and (x is None or y is None):
                continue
            add(goal + tag, _ratio(y, x) if inverse else _ratio(x, y), target, ok)

    lif = {r["name"]: r for r in results.get("lif", [])}
    if "svf" in lif and "sj" in lif:
        both(lif, "sj", "svf", "LIF fwd+bwd speed-up vs SpikingJelly (x)", ">= 2", lambda v: v >= 2)
        add("LIF fwd+bwd peak memory vs SpikingJelly (ratio)",
            _ratio(lif["svf"]["peak_mb"], lif["sj"]["peak_mb"]), "<= 0.6", lambda v: v <= 0.6)
    tr = {r["name"]: r for r in results.get("train", [])}
    if "svf" in tr and "sj" in tr:
        both(tr, "sj", "svf", "train step speed-up vs SpikingJelly LIF (x)", ">= 1.5",
             lambda v: v >= 1.5)
        add("train step peak memory vs SpikingJelly LIF (ratio)",
            _ratio(tr["svf"]["peak_mb"], tr["sj"]["peak_mb"]), "<= 0.7", lambda v: v <= 0.7)
        if "svf_compact" in tr:
            both(tr, "sj", "svf_compact",
                 "train step speed-up vs SJ, with compact_spike_storage (x)", ">= 1.5",
                 lambda v: v >= 1.5)
            add("train step peak memory vs SJ, with compact_spike_storage (ratio)",
                _ratio(tr["svf_compact"]["peak_mb"], tr["sj"]["peak_mb"]), "<= 0.7",
                lambda v: v <= 0.7)
    sc = results.get("scaling", [])
    frames = sorted({r["T"] for r in sc})
    if {8, 32} <= set(frames):
        lo, hi = 8, 32
    else:
        lo, hi = (frames[0], frames[-1]) if frames else (None, None)
    if lo is not None and lo != hi:
        by = {(r["name"], r["T"]): r for r in sc}
        lin = hi / lo
        for k in dict.fromkeys(r["name"] for r in sc):
            if (k, lo) in by and (k, hi) in by:
                rows = {"hi": by[(k, hi)], "lo": by[(k, lo)]}
                if k == "joint":
                    both(rows, "hi", "lo", f"latency T={hi} / T={lo}, joint SDHA (x)",
                         f"<= {4.2 * lin / 4:.2f}", lambda v, lin=lin: v <= 4.2 * lin / 4)
                else:
                    both(rows, "hi", "lo", f"latency T={hi} / T={lo}, {k} (x)", "(reported)", None)
                add(f"peak memory T={hi} / T={lo}, {k} (x)",
                    _ratio(by[(k, hi)]["peak_mb"], by[(k, lo)]["peak_mb"]), "(reported)", None)
    return out


# --------------------------------------------------------------------------- output
def write_csv(rows: list[dict], path: str) -> None:
    """Benchmark rows as CSV (floats to 6 significant digits), written atomically; no rows, no file."""
    if rows:
        atomic_write_csv(path, rows, float_format=".6g")


def _fmt(v, nd: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def format_report(results: dict, markdown: bool = False) -> str:
    """Human-readable tables of one run (plain text, or Markdown with ``markdown=True``)."""
    lines: list[str] = []

    def table(head: list[str], rows: list[list[str]]) -> None:
        if markdown:
            lines.append("| " + " | ".join(head) + " |")
            lines.append("|" + "|".join("---" for _ in head) + "|")
            for r in rows:
                lines.append("| " + " | ".join(r) + " |")
        else:
            w = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
            lines.append("  ".join(h.ljust(w[i]) for i, h in enumerate(head)))
            for r in rows:
                lines.append("  ".join(c.ljust(w[i]) for i, c in enumerate(r)))
        lines.append("")

    info = results.get("machine", {})
    if info:
        m = ", ".join(f"{k}={v}" for k, v in info.items() if v is not None)
        lines += [("Machine: " if not markdown else "Machine: ") + m, ""]
    lif = results.get("lif", [])
    if lif:
        lines.append(f"LIF forward+backward, x = [{lif[0]['shape'].replace('x', ', ')}] float32 "
                     f"(median of {lif[0]['reps']})")
        table(["implementation", "fwd+bwd ms", "CPU ms", "fwd ms", "bwd ms", "peak MB",
               "bytes/elem"],
              [[r["label"], _fmt(r["time_ms"], 2), _fmt(r.get("cpu_ms"), 2), _fmt(r["fwd_ms"], 2),
                _fmt(r["bwd_ms"], 2), _fmt(r["peak_mb"]), _fmt(r["bytes_per_element"])]
               for r in lif])
    tr = results.get("train", [])
    if tr:
        r0 = tr[0]
        lines.append(f"Training step (forward + backward + SGD), {r0['model']}, B={r0['batch']}, "
                     f"T={r0['T']}, {r0['size']}x{r0['size']} (median of {r0['reps']}); "
                     f"train-mode outputs identical: "
                     f"{'not checked (network silent)' if r0['outputs_identical'] is None else r0['outputs_identical']}")
        table(["model", "step ms", "CPU ms", "clips/s", "peak MB"],
              [[r["label"], _fmt(r["time_ms"]), _fmt(r.get("cpu_ms")), _fmt(r["clips_per_s"], 2),
                _fmt(r["peak_mb"])] for r in tr])
    sc = results.get("scaling", [])
    if sc:
        r0 = sc[0]
        frames = sorted({r["T"] for r in sc})
        names = list(dict.fromkeys(r["name"] for r in sc))
        by = {(r["name"], r["T"]): r for r in sc}
        lines.append(f"Inference forward latency (ms) vs T, {r0['model']}, B={r0['batch']}, "
                     f"{r0['size']}x{r0['size']} "
                     f"(stage-3 tokens per frame {(r0['size'] // 16) ** 2}; "
                     f"median of {r0['reps']})")
        lo, hi = (8, 32) if {8, 32} <= set(frames) else (frames[0], frames[-1])
        head = ["design"] + [f"T={t}" for t in frames] + [f"T{hi}/T{lo}"]

        def vs_t(key: str) -> list:
            """One row per design: ``key`` at each T, then the T{hi}/T{lo} ratio."""
            rows = []
            for k in names:
                ratio = _ratio(by[(k, hi)][key], by[(k, lo)][key]) if (k, hi) in by else None
                rows.append([DESIGN_TITLES.get(k, k)]
                            + [_fmt(by[(k, t)][key], 0) if (k, t) in by else "-" for t in frames]
                            + [_fmt(ratio, 2)])
            return rows

        table(head, vs_t("time_ms"))
        if all(r.get("cpu_ms") is not None for r in sc):
            lines.append("Process CPU time per forward (ms) vs T (robust to other load)")
            table(head, vs_t("cpu_ms"))
        lines.append("Inference peak memory (MB) vs T")
        table(head, vs_t("peak_mb"))
        lines.append("Inference throughput (clips/s) vs T")
        table(head[:-1], [[DESIGN_TITLES.get(k, k)] + [_fmt(by[(k, t)]["clips_per_s"], 2)
                                                       if (k, t) in by else "-" for t in frames]
                          for k in names])
    summ = results.get("summary", [])
    if summ:
        lines.append("Goals")
        table(["goal", "measured", "target", "met"],
              [[s["goal"], _fmt(s["value"], 2), s["target"],
                "-" if s["met"] is None else ("yes" if s["met"] else "NO")] for s in summ])
    return "\n".join(lines)


def plot(results: dict, path: str) -> None:
    """One PNG with the LIF, training-step and scaling panels."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [s for s in ("lif", "train", "scaling") if results.get(s)]
    n = len(panels) + (1 if results.get("scaling") else 0)
    ncols = 2 if n == 4 else max(n, 1)
    nrows = 2 if n == 4 else 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.0 * ncols, 4.2 * nrows), squeeze=False)
    axes = [a for row in axes for a in row]
    colors = {"svf": "#1f77b4", "svf_torch": "#9ecae1", "svf_compact": "#2ca02c", "sj": "#ff7f0e"}

    def bars(ax, rows, title):
        names = [r["name"] for r in rows]
        t = [r["time_ms"] for r in rows]
        m = [r["peak_mb"] for r in rows]
        xs = range(len(rows))
        ax.bar([i - 0.2 for i in xs], t, 0.4, color=[colors.get(n, "#888") for n in names],
               label="time (ms)")
        ax2 = ax.twinx()
        ax2.bar([i + 0.2 for i in xs], m, 0.4, color=[colors.get(n, "#888") for n in names],
                alpha=0.45, hatch="//", label="peak memory (MB)")
        ax.set_xticks(list(xs))
        ax.set_xticklabels([{"svf": "ours", "svf_torch": "ours\n(torch)", "sj": "SpikingJelly",
                             "svf_compact": "ours +\ncompact"}.get(n, n) for n in names])
        ax.set_ylabel("time (ms), solid")
        ax2.set_ylabel("peak memory (MB), hatched")
        ax.set_title(title, fontsize=10)

    i = 0
    if results.get("lif"):
        bars(axes[i], results["lif"], "LIF forward+backward")
        i += 1
    if results.get("train"):
        r0 = results["train"][0]
        bars(axes[i], results["train"], f"train step {r0['model']} B{r0['batch']} T{r0['T']}")
        i += 1
    sc = results.get("scaling", [])
    if sc:
        names = list(dict.fromkeys(r["name"] for r in sc))
        for key, ax, ylabel in (("time_ms", axes[i], "forward latency (ms)"),
                                ("peak_mb", axes[i + 1], "peak memory (MB)")):
            for k in names:
                rr = sorted((r for r in sc if r["name"] == k), key=lambda r: r["T"])
                ax.plot([r["T"] for r in rr], [r[key] for r in rr], marker="o",
                        label=DESIGN_TITLES.get(k, k), linestyle="--" if k == "ann" else "-")
            ts = sorted({r["T"] for r in sc})
            ref = sorted((r for r in sc if r["name"] == names[0]), key=lambda r: r["T"])
            if key == "time_ms" and ref:  # slope-1 guide through the first design's first point
                ax.plot(ts, [ref[0][key] * t / ts[0] for t in ts], color="gray", linestyle=":",
                        linewidth=1, label="∝ T (linear)")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xticks(ts)
            ax.set_xticklabels([str(t) for t in ts])
            ax.set_xlabel("frames T")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{ylabel} vs T ({sc[0]['model']}, {sc[0]['size']}px)", fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
        axes[i].legend(fontsize=7)
    info = results.get("machine", {})
    fig.suptitle(f"svf bench — {info.get('gpu') or info.get('cpu', '')}, "
                 f"torch threads: {info.get('torch_threads', '')}, torch {info.get('torch', '')}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def tune_malloc() -> bool:
    """Ask glibc to keep freed memory for reuse instead of returning big blocks to the OS
    (``mallopt(M_MMAP_THRESHOLD / M_TRIM_THRESHOLD)``, like ``MALLOC_MMAP_THRESHOLD_``): large
    fresh allocations otherwise page-fault on every forward, which grows faster than linearly
    with the tensor size. Returns False where glibc is not available."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, 2**30) == 1
        ok = libc.mallopt(m_trim_threshold, 2**31 - 1) == 1 and ok
        return ok
    except (OSError, AttributeError):
        return False


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
    for sec, fn in (("lif", bench_lif), ("train", bench_train), ("scaling", bench_scaling)):
        if sec in cfg.sections:
            ts = time.perf_counter()
            log(f"[{sec}] running ...")
            results[sec] = fn(cfg, log=log)
            log(f"[{sec}] done in {time.perf_counter() - ts:.1f} s")
    results["summary"] = summarize(results)
    results["wall_s"] = time.perf_counter() - t0
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        for sec in ("lif", "train", "scaling", "summary"):
            write_csv(results.get(sec, []), os.path.join(out_dir, f"bench_{sec}.csv"))
        machine = {**results["machine"], "wall_s": f"{results['wall_s']:.1f}"}
        atomic_write_csv(os.path.join(out_dir, "bench_machine.csv"),
                         [{"key": k, "value": v} for k, v in machine.items()])
        plot(results, os.path.join(out_dir, "bench.png"))
    return results
