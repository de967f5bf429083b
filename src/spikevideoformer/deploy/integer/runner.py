"""Plain-NumPy executor of the integer network (docs/integer.md). Imports no torch.

    python runner.py NET_DIR clip.npy          # clip: uint8 [T, H, W, C]; prints logits and ops

or, from Python without importing the (torch-based) package::

    spec = importlib.util.spec_from_file_location("svf_runner", ".../deploy/integer/runner.py")
    runner = importlib.util.module_from_spec(spec)
    sys.modules["svf_runner"] = runner; spec.loader.exec_module(runner)
    result = runner.run(runner.load(NET_DIR), clip)

Every tensor is an integer array ``[T, C, H, W]`` (one clip). Convolutions and the attention
products are evaluated as dense products of integers carried in float64: every operand and
partial sum is an integer below 2^53 (checked per call), so the results are exact; the
operations an event-driven engine would execute are counted from the spikes (``counts.py``).
"""
from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

if __package__:  # imported as spikevideoformer.deploy.integer.runner
    from .counts import CountReport, OpCount, attention_ops, conv_ops
    from .fixed_point import INT32_MAX, lif_int
    from .graph_format import load_graph
else:  # loaded by path: its sibling files, also without the package
    def _sibling(name: str):
        key = f"_svf_integer_{name}"
        if key not in sys.modules:
            spec = importlib.util.spec_from_file_location(key, Path(__file__).with_name(f"{name}.py"))
            mod = importlib.util.module_from_spec(spec)
            sys.modules[key] = mod
            spec.loader.exec_module(mod)
        return sys.modules[key]
    CountReport, OpCount, attention_ops, conv_ops = (
        getattr(_sibling("counts"), n) for n in ("CountReport", "OpCount", "attention_ops", "conv_ops"))
    INT32_MAX, lif_int = _sibling("fixed_point").INT32_MAX, _sibling("fixed_point").lif_int
    load_graph = _sibling("graph_format").load_graph

__all__ = ["IntegerGraph", "RunResult", "load", "run", "conv2d_int", "attention_int"]

_EXACT = 2.0 ** 53


@dataclass
class IntegerGraph:
    """A loaded network: the JSON graph and its integer tensors."""

    graph: dict
    tensors: dict


@dataclass
class RunResult:
    """Output of :func:`run`: ``logits [K]`` (float64: integer accumulators × output scale;
    a features graph gives ``[T, C, H, W]`` features, a segmentation graph per-frame stride-4
    logits ``[T, K, H/4, W/4]``),
    ``accumulators`` (the integers), counted operations, spikes per LIF op (if recorded) and the
    peak |membrane| per LIF op."""

    logits: np.ndarray
    accumulators: np.ndarray
    counts: CountReport
    spikes: dict = field(default_factory=dict)
    membrane_peak: dict = field(default_factory=dict)


def load(path) -> IntegerGraph:
    """Read a folder written by ``svf export --format integer``."""
    return IntegerGraph(*load_graph(path))


def _exact_dot(a: np.ndarray, b: np.ndarray, bound: float, what: str, spec: str) -> np.ndarray:
    if bound >= _EXACT:
        raise OverflowError(f"{what}: partial sums may reach {bound:.3g} >= 2^53, beyond exact "
                            f"evaluation; re-export with fewer weight bits")
    # optimize: BLAS; any summation order is exact (every partial sum is an integer < 2^53)
    return np.rint(np.einsum(spec, a.astype(np.float64), b.astype(np.float64),
                             optimize=True)).astype(np.int64)


def conv2d_int(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int, padding: int,
               groups: int, what: str = "conv", shift: np.ndarray | None = None) -> np.ndarray:
    """Integer convolution ``[T, C_in, H, W] → [T, C_out, H', W']`` (zero padding), exact; then
    per output channel ``(acc + 2^(s-1)) >> s`` (``shift`` s, round half up) and ``+ b``."""
    c_out, cpg, k, _ = w.shape
    T, c_in = x.shape[:2]
    depthwise = groups > 1 and groups == c_in == c_out
    if not (groups == 1 or depthwise) or cpg * groups != c_in:
        raise ValueError(f"{what}: only dense (groups=1) and depth-wise convs are supported "
                         f"(groups={groups}, weight {w.shape}, input {x.shape})")
    bound = float(np.abs(x).max(initial=0)) * float(np.abs(w.astype(np.int64)).reshape(c_out, -1).sum(1).max())
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]  # [T, C, H', W', k, k]
    if groups == 1:
        y = _exact_dot(win, w, bound, what, "tchwuv,ocuv->tohw")
    else:
        y = _exact_dot(win, w[:, 0], bound, what, "tchwuv,cuv->tchw")
    if shift is not None:
        s = shift.astype(np.int64).reshape(1, -1, 1, 1)
        y = (y + np.where(s > 0, np.left_shift(1, np.maximum(s - 1, 0)), 0)) >> s
    if b is not None:
        y += b.astype(np.int64).reshape(1, -1, 1, 1)
    return y


def _tokens(x: np.ndarray, heads: int, grouping: str) -> np.ndarray:
    T, C, H, W = x.shape
    d = C // heads
    y = x.transpose(0, 2, 3, 1)  # [T, H, W, C]
    if grouping == "joint":
        return y.reshape(T * H * W, heads, d).transpose(1, 0, 2)           # [h, THW, d]
    if grouping == "spatial":
        return y.reshape(T, H * W, heads, d).transpose(0, 2, 1, 3)         # [T, h, HW, d]
    if grouping == "temporal":
        return y.transpose(1, 2, 0, 3).reshape(H * W, T, heads, d).transpose(0, 2, 1, 3)  # [HW, h, T, d]
    raise ValueError(f"unknown attention grouping {grouping!r}")


def _untokens(y: np.ndarray, shape: tuple, grouping: str) -> np.ndarray:
    T, C, H, W = shape
    if grouping == "joint":
        z = y.transpose(1, 0, 2).reshape(T, H, W, C)
    elif grouping == "spatial":
        z = y.transpose(0, 2, 1, 3).reshape(T, H, W, C)
    else:
        z = y.transpose(0, 2, 1, 3).reshape(H, W, T, C).transpose(2, 0, 1, 3)
    return z.transpose(0, 3, 1, 2)


def attention_int(q: np.ndarray, k: np.ndarray, v: np.ndarray, heads: int, grouping: str,
                  kind: str, dn: int) -> np.ndarray:
    """Integer attention core on spike counts ``[T, C, H, W]`` (docs/design.md eq. (3.5), (3.6)):
    SDHA ``(2q - D)((2k - D)^T v)``, SDSA ``q (k^T v)``; ``D^3`` times the float core."""
    qt, kt, vt = (_tokens(z.astype(np.int64), heads, grouping) for z in (q, k, v))
    if kind == "hamming":
        qt, kt = 2 * qt - dn, 2 * kt - dn
    n = qt.shape[-2]
    kv = _exact_dot(kt, vt, float(n) * dn * dn, "attention K^T V", "...nd,...ne->...de")
    bound = float(np.abs(kv).max(initial=0)) * qt.shape[-1] * dn
    y = _exact_dot(qt, kv, bound, "attention Q (K^T V)", "...nd,...de->...ne")
    return _untokens(y, q.shape, grouping)


def _input(op: dict, clip: np.ndarray, graph: dict) -> np.ndarray:
    spec = graph["input"]
    c = spec["channels"]
    if not isinstance(clip, np.ndarray) or clip.dtype != np.uint8:
        raise TypeError(f"the clip must be a uint8 NumPy array [T, H, W, {c}], got "
                        f"{getattr(clip, 'dtype', type(clip).__name__)}")
    if clip.ndim != 4 or clip.shape[-1] != c:
        raise ValueError(f"the clip must be [T, H, W, {c}], got shape {clip.shape}")
    size = spec.get("size")
    if size is not None and list(clip.shape[1:3]) != list(size):
        raise ValueError(f"this network was exported for {size[0]}x{size[1]} frames, "
                         f"got {clip.shape[1]}x{clip.shape[2]}")
    if clip.shape[0] < 1:
        raise ValueError("the clip has no frames (T = 0)")
    zp = np.asarray(spec["zero_point"], dtype=np.int64).reshape(1, -1, 1, 1)
    return (clip.transpose(0, 3, 1, 2).astype(np.int64) << spec["frac_bits"]) - zp


def run(net: IntegerGraph, clip: np.ndarray, record_spikes: bool = False) -> RunResult:
    """Execute ``net`` on one clip ``uint8 [T, H, W, C]``; counts every operation."""
    g, P = net.graph, net.tensors
    env: dict[str, np.ndarray] = {}
    report, spikes, peaks = CountReport(frames=int(clip.shape[0]) if clip.ndim else 0), {}, {}
    for op in g["ops"]:
        kind, a, name = op["op"], op.get("attrs", {}), op["name"]
        xs = [env[t] for t in op.get("inputs", [])]
        prm = {role: P[key] for role, key in op.get("params", {}).items()}
        if kind == "input":
            y = _input(op, clip, g)
        elif kind == "conv":
            x = xs[0]
            y = conv2d_int(x, prm["weight"], prm.get("bias"), a["stride"], a["padding"],
                           a["groups"], name, prm.get("shift"))
            spike = a["input"] == "spike"
            c_out, _, k, _ = prm["weight"].shape
            ops = conv_ops(x, c_out, a["groups"], k, a["stride"], a["padding"], spike)
            nz = np.count_nonzero(x) if spike else 0
            report.rows.append(OpCount(name, a["stage"], a["kind"], a["input"], tuple(x.shape),
                                       int(y.size) * (x.shape[1] // a["groups"]) * k * k,
                                       ops.tolist(), int(nz), int(x.size),
                                       int(x.astype(np.int64).sum()) if spike else 0))
        elif kind == "lif":
            x = xs[0] * prm["gain"].astype(np.int64)
            if "bias" in prm:
                x = x + prm["bias"].astype(np.int64)
            y, peak = lif_int(x, theta=prm.get("theta"), unit=prm.get("unit"),
                              spike_max=a["spike_max"], tau=tuple(a["tau"]),
                              decay_input=a["decay_input"], soft_reset=a["soft_reset"],
                              reset_sub=prm.get("reset_sub"), temporal_state=a["temporal_state"])
            if peak > INT32_MAX:
                raise OverflowError(f"{name}: membrane reached {peak} > int32; re-export with "
                                    f"fewer membrane fraction bits")
            peaks[name] = peak
            if record_spikes:
                spikes[name] = y
        elif kind == "add":
            y = xs[0] + xs[1]
        elif kind == "attention":
            q, k, v = xs
            y = attention_int(q, k, v, a["heads"], a["grouping"], a["kind"], a["dn"])
            kv, qkv = attention_ops(q, v, a["heads"], a["kind"], a["dn"])
            dense = int(q.size) * (q.shape[1] // a["heads"])
            drive_q = np.abs(2 * q.astype(np.int64) - a["dn"]) if a["kind"] == "hamming" else q
            for suffix, label, per, drv in (("kv", "K^T V", kv, v), ("qkv", "Q (K^T V)", qkv, drive_q)):
                report.rows.append(OpCount(f"{name}.{suffix}", a["stage"], label, "spike",
                                           tuple(q.shape), dense, per.tolist(),
                                           int(np.count_nonzero(drv)), int(drv.size),
                                           int(np.asarray(drv, dtype=np.int64).sum())))
        elif kind == "upsample":  # nearest: copies through the stored index maps
            y = xs[0][:, :, prm["rows"]][:, :, :, prm["cols"]]
        elif kind == "pool":
            y = xs[0].sum(axis=(2, 3), keepdims=True)
        else:  # time_sum
            y = xs[0].sum(axis=0)
        env[op["output"]] = y
    out = g["output"]
    acc, scale = env[out["tensor"]], np.asarray(out["scale"], dtype=np.float64)
    if out.get("kind", "logits") in ("features", "segmentation"):  # [T, C, H, W] per frame
        logits = acc.astype(np.float64) * scale.reshape(1, -1, 1, 1)
    else:                                            # the mean over T of the per-step logits
        acc = acc.reshape(-1)
        logits = acc.astype(np.float64) * scale / clip.shape[0]
    return RunResult(logits, acc, report, spikes, peaks)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python runner.py NET_DIR CLIP.npy   (clip: uint8 [T, H, W, C])", file=sys.stderr)
        return 2
    try:
        res = run(load(argv[0]), np.load(argv[1], allow_pickle=False))
    except (OSError, ValueError, TypeError, OverflowError) as e:
        print(f"runner: error: {e}", file=sys.stderr)
        return 2
    if res.logits.ndim == 1:
        print("logits", " ".join(f"{v:.6g}" for v in res.logits))
        print(f"predicted class {int(np.argmax(res.logits))}")
    else:  # features, or segmentation logits [T, K, h, w]: their shape and argmax histogram
        labels = np.bincount(res.logits.argmax(1).reshape(-1), minlength=res.logits.shape[1])
        print(f"output {list(res.logits.shape)}; pixels per argmax channel {labels.tolist()}")
    print(res.counts.table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
