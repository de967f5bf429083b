"""Where the time and the saved activations of one training step go, ours vs SpikingJelly's LIF.

One step (forward, cross-entropy, backward, SGD with momentum) of ``svf_tiny`` (joint SDHA) on
``B x T x 3 x S x S`` random video, 1 thread, under ``torch.profiler`` (CPU). Every op's *self*
CPU time is put in one category:

* forward: by the innermost categorised module around it (forward pre/post hooks open a
  ``record_function`` per Conv / BatchNorm (incl. BNAndPad) / LIF (ours or SJ's) module and
  around each attention core); ops outside all of them are ``other`` (residual adds, the
  ``per_frame`` / token reshapes, the loss);
* backward: by the forward op that created the autograd node (matched by sequence number), so
  e.g. the ``MulBackward0`` of SJ's neuron counts as LIF; ``AccumulateGrad`` is ``other``;
* ``optimizer``: ``opt.step()`` and ``zero_grad``.

A second table counts the bytes saved for backward (``saved_tensors_hooks``, each storage once)
per category of the module that saved them, with and without ``compact_spike_storage``.

    OMP_NUM_THREADS=1 python benchmarks/profile_train_step.py          # B=4 T=8 64x64
    python benchmarks/profile_train_step.py --batch 1 --frames 2 --size 32 --reps 1   # quick
"""
from __future__ import annotations

import argparse
import contextlib
from collections import defaultdict

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

from spikevideoformer.analysis.bench.measure import machine_info
from spikevideoformer.analysis.bench.spikingjelly_adapter import (
    SpikingJellyLIF, spikingjelly_available, swap_to_spikingjelly,
)
from spikevideoformer.layers.attention import hamming_linear  # noqa: F401 (documentation)
from spikevideoformer.layers.blocks import AttentionBranch
from spikevideoformer.layers.neuron import LIF, compact_spike_storage
from spikevideoformer.layers.repconv import BNAndPad
from spikevideoformer.layers.spike_storage import _unpack_spikes
from spikevideoformer.models import create_model

CATS = ("conv", "BN", "LIF", "attention", "optimizer", "other")
_TAG = "cat::"


def category(m: nn.Module) -> str | None:
    if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
        return "conv"
    if isinstance(m, (nn.modules.batchnorm._BatchNorm, BNAndPad)):
        return "BN"
    if isinstance(m, (LIF, SpikingJellyLIF)):
        return "LIF"
    return None


class Tagger:
    """Forward hooks that keep a stack of categories and open a ``record_function`` per module."""

    def __init__(self, model: nn.Module) -> None:
        self.stack: list[str] = []
        self.handles = []
        for m in model.modules():
            cat = category(m)
            if cat is not None and not any(category(c) == cat for c in m.children()):
                self.handles.append(m.register_forward_pre_hook(self._pre(cat)))
                self.handles.append(m.register_forward_hook(self._post))
            if isinstance(m, AttentionBranch):  # the core is a method, not a module
                m.core = self._wrap(m.core, "attention")

    def _pre(self, cat):
        def hook(_m, _inp):
            self.push(cat)
        return hook

    def _post(self, _m, _inp, _out):
        self.pop()

    def push(self, cat: str) -> None:
        rf = record_function(_TAG + cat)
        rf.__enter__()
        self.stack.append((cat, rf))

    def pop(self) -> None:
        self.stack.pop()[1].__exit__(None, None, None)

    def current(self) -> str:
        return self.stack[-1][0] if self.stack else "other"

    def _wrap(self, fn, cat):
        def wrapped(*a, **kw):
            self.push(cat)
            try:
                return fn(*a, **kw)
            finally:
                self.pop()
        return wrapped


def make_models(args) -> dict[str, nn.Module]:
    torch.manual_seed(0)
    ours = create_model(args.model, num_classes=10, attention="hamming", design="joint")
    models = {"ours": ours}
    if spikingjelly_available():
        sj = create_model(args.model, num_classes=10, attention="hamming", design="joint")
        sj.load_state_dict(ours.state_dict())
        swap_to_spikingjelly(sj)
        models["spikingjelly"] = sj
    return models


def make_step(model, video, target, compact=False, saved_hook=None):
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step():
        model.train()
        with contextlib.ExitStack() as st:
            if compact:
                st.enter_context(compact_spike_storage())
            if saved_hook is not None:
                st.enter_context(saved_hook())
            loss = nn.functional.cross_entropy(model(video), target)
        loss.backward()
        with record_function(_TAG + "optimizer"):
            opt.step()
            opt.zero_grad(set_to_none=True)
    return step


def categorise(events) -> dict[str, float]:
    """Self CPU µs per category from the profiler's FunctionEvents (see module docstring)."""
    fwd_cat: dict[int, str] = {}  # forward op sequence number -> category

    def own_cat(e):
        while e is not None:
            if e.name.startswith(_TAG):
                return e.name[len(_TAG):]
            e = e.cpu_parent
        return None

    for e in events:
        seq = getattr(e, "sequence_nr", -1)
        if seq is not None and seq >= 0 and not e.is_legacy and "Backward" not in e.name \
                and not e.name.startswith("autograd::"):
            fwd_cat.setdefault(seq, own_cat(e) or "other")
    out: dict[str, float] = defaultdict(float)
    for e in events:
        if e.name.startswith(_TAG):
            out[e.name[len(_TAG):]] += e.self_cpu_time_total
            continue
        cat, a = None, e
        while a is not None and cat is None:
            if a.name.startswith(_TAG):
                cat = a.name[len(_TAG):]
            elif a.name.startswith("autograd::engine::evaluate_function"):
                node = a.name.split(":")[-1].strip()
                seq = getattr(a, "sequence_nr", -1)
                if "AccumulateGrad" in node:
                    cat = "other"
                elif seq in fwd_cat:
                    cat = fwd_cat[seq]
                elif "LIF" in node:
                    cat = "LIF"
                elif "Convolution" in node:
                    cat = "conv"
                elif "BatchNorm" in node:
                    cat = "BN"
                else:
                    cat = "other"
            a = a.cpu_parent
        out[cat or "other"] += e.self_cpu_time_total
    return out


def profile_step(model, video, target, reps: int) -> dict[str, float]:
    tagger = Tagger(model)
    step = make_step(model, video, target)
    step()  # allocates grads / momentum buffers
    best = None
    for _ in range(reps):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
        cats = categorise(prof.events())
        if best is None or sum(cats.values()) < sum(best.values()):
            best = cats
    for h in tagger.handles:
        h.remove()
    return best


def saved_bytes(model, video, target, compact: bool) -> dict[str, float]:
    """Bytes saved for backward per category (each storage counted once, first saver wins)."""
    tagger = Tagger(model)
    seen: set[int] = set()
    out: dict[str, float] = defaultdict(float)
    cs = compact_spike_storage() if compact else None

    def pack(t):
        p = cs._pack(t) if cs is not None else t
        real = p.bits if hasattr(p, "bits") else p
        try:
            st = real.untyped_storage()
            key = st.data_ptr()
            if key not in seen:
                seen.add(key)
                cat = tagger.current()
                if real.dtype == torch.bool:
                    cat += " (bool spikes)"
                out[cat] += st.nbytes()
        except (RuntimeError, NotImplementedError):
            pass
        return p

    @contextlib.contextmanager
    def hook():
        with contextlib.ExitStack() as st:
            if cs is not None:
                st.enter_context(cs)
            st.enter_context(torch.autograd.graph.saved_tensors_hooks(pack, _unpack_spikes))
            yield

    make_step(model, video, target, saved_hook=hook)()
    for h in tagger.handles:
        h.remove()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="svf_tiny")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3, help="profiled steps; the fastest is shown")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    info = machine_info("cpu")
    print(f"CPU: {info.get('cpu')}, threads {torch.get_num_threads()}, torch {torch.__version__}")
    g = torch.Generator().manual_seed(0)
    video = torch.randn(args.batch, args.frames, 3, args.size, args.size, generator=g)
    target = torch.randint(0, 10, (args.batch,), generator=g)
    models = make_models(args)
    res = {k: profile_step(m, video, target, args.reps) for k, m in models.items()}
    print(f"\nSelf CPU time per category, one training step of {args.model} B={args.batch} "
          f"T={args.frames} {args.size}x{args.size} (profiled; fastest of {args.reps})")
    head = f"{'category':<11}" + "".join(f"{k + ' ms':>16}{'%':>6}" for k in res)
    if len(res) == 2:
        head += f"{'SJ - ours ms':>14}"
    print(head)
    for c in CATS + ("total",):
        row = f"{c:<11}"
        vals = []
        for r in res.values():
            tot = sum(r.values())
            v = tot if c == "total" else r.get(c, 0.0)
            vals.append(v)
            row += f"{v / 1e3:>16.1f}{100 * v / tot:>6.1f}"
        if len(vals) == 2:
            row += f"{(vals[1] - vals[0]) / 1e3:>14.1f}"
        print(row)

    print("\nBytes saved for backward per category of the saving module (MB)")
    variants = [("ours", models["ours"], False), ("ours + compact", models["ours"], True)]
    if "spikingjelly" in models:
        variants.append(("spikingjelly", models["spikingjelly"], False))
    tabs = {name: saved_bytes(m, video, target, c) for name, m, c in variants}
    keys = sorted({k for t in tabs.values() for k in t})
    print(f"{'category':<24}" + "".join(f"{n:>16}" for n in tabs))
    for k in keys + ["total"]:
        print(f"{k:<24}" + "".join(
            f"{(sum(t.values()) if k == 'total' else t.get(k, 0.0)) / 2**20:>16.1f}"
            for t in tabs.values()))


if __name__ == "__main__":
    main()
