"""Multi-step LIF and Integer-LIF neurons (SPEC §1).

One video frame is one time step. The membrane state lives only inside one call:
``lif_multistep(x)`` starts at ``v = v_reset`` for every clip, so nothing leaks between
calls or between samples of a batch.

Two implementations share one set of equations:

* ``lif_reference`` — a plain autograd loop, easy to read, used by tests as the oracle;
* ``LIFFunction`` — a custom ``torch.autograd.Function`` that runs the time loop without
  autograd bookkeeping and stores only the membrane ``h`` (one tensor in the input dtype) for
  backward. Spikes are re-derived from ``h`` in backward, and the backward pass writes the
  input gradient into that same buffer, so one LIF costs ``h`` + spikes in forward and nothing
  more in backward. In inference (no grad needed) ``h`` is not stored at all.

Equations (SPEC §1), ``decay_input=True``::

    h[t] = v[t-1] + (x[t] - (v[t-1] - v_reset)) / tau
    s[t] = Heaviside(h[t] - v_th)                      # ties fire
    v[t] = h[t] * (1 - s[t]) + v_reset * s[t]          # hard reset
    v[t] = h[t] - v_th * s[t]                          # soft reset

Backward: surrogate ``d s / d h = alpha * sigmoid'(alpha * (h - v_th))``; with
``detach_reset`` the reset term is treated as a constant.

Integer-LIF (``spike_max = D > 1``): the fired value is ``clamp(round(h), 0, D)``, the reset
subtracts the fired amount, and the output is normalised by ``D`` (``s / D``) so activations
stay in [0, 1]; at inference a spike of value k equals k binary spikes and the ``1/D`` folds
into the next layer's weights. Gradient: straight-through ``1/D`` inside (0, D).
``D = 1`` is the binary LIF above.

Backends of ``LIFFunction`` (chosen per call, see :func:`set_lif_backend`):

* ``"native"`` — a small C kernel (CPU, float32, scalar ``v_th``): one pass over memory per
  direction, time loop innermost per block of neurons. Compiled with the system C compiler
  on first use (about a second, cached under ``~/.cache/spikevideoformer``) and loaded with
  ``ctypes``; nothing is compiled at import. If no compiler is found or the build fails, the
  ``"torch"`` backend is used silently (``SVF_LIF_NATIVE=0`` disables it).
* ``"triton"`` — the same kernels in Triton (``layers/_lif_triton.py``) for CUDA float32
  tensors, when ``triton`` imports.
* ``"torch"`` — pure PyTorch ops with preallocated buffers (any device / dtype, tensor
  thresholds); always available.

All backends give bit-identical spikes (the forward arithmetic is the same IEEE float
operations in the same order as ``lif_reference``) and gradients equal to ``lif_reference``
up to float rounding of the surrogate.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
import weakref
from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "LIFParams", "lif_reference", "lif_multistep", "LIFFunction", "LIF", "NeuronSpec",
    "LIF_BACKENDS", "set_lif_backend", "get_lif_backend", "available_lif_backends",
    "lif_backend_for", "compact_spike_storage",
]


@dataclass(frozen=True)
class LIFParams:
    """Hyper-parameters of a multi-step LIF neuron (defaults: SPEC §1 / official code)."""

    tau: float = 2.0
    v_th: float | torch.Tensor = 1.0  # a tensor broadcastable to x[t] gives per-channel thresholds
    v_reset: float = 0.0
    decay_input: bool = True
    soft_reset: bool = False
    detach_reset: bool = True
    alpha: float = 4.0
    spike_max: int = 1

    def __post_init__(self) -> None:
        if not self.tau > 1.0:
            raise ValueError(f"LIF tau must be > 1, got {self.tau}")
        if not bool(torch.all(torch.as_tensor(self.v_th) > 0)):
            raise ValueError(f"LIF v_th must be > 0, got {self.v_th}")
        if int(self.spike_max) != self.spike_max or self.spike_max < 1:
            raise ValueError(f"LIF spike_max must be an integer >= 1, got {self.spike_max}")
        if not self.alpha > 0:
            raise ValueError(f"LIF alpha must be > 0, got {self.alpha}")


def _charge(x: torch.Tensor, v: torch.Tensor, p: LIFParams) -> torch.Tensor:
    """Membrane charge, SPEC §1 first line (and its ``decay_input=False`` variant)."""
    if p.decay_input:
        if p.v_reset == 0.0:
            return v + (x - v) / p.tau
        return v + (x - (v - p.v_reset)) / p.tau
    if p.v_reset == 0.0:
        return v - v / p.tau + x
    return v - (v - p.v_reset) / p.tau + x


def _sg(u: torch.Tensor, alpha: float) -> torch.Tensor:
    """Derivative of the sigmoid surrogate ``sigmoid(alpha * u)`` with respect to ``u``."""
    s = torch.sigmoid(alpha * u)
    return alpha * s * (1.0 - s)


class _SigmoidHeaviside(torch.autograd.Function):
    """Heaviside forward, sigmoid-surrogate backward (used by the reference loop)."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, alpha: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(u)
        ctx.alpha = alpha
        return (u >= 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (u,) = ctx.saved_tensors
        return grad * _sg(u, ctx.alpha), None


class _RoundClampSTE(torch.autograd.Function):
    """``clamp(round(h), 0, D)`` forward, straight-through gradient inside (0, D)."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, d: int) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(h)
        ctx.d = d
        return torch.clamp(torch.round(h), 0, d)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (h,) = ctx.saved_tensors
        return grad * ((h > 0) & (h < ctx.d)).to(grad.dtype), None


def lif_reference(x: torch.Tensor, p: LIFParams = LIFParams()) -> torch.Tensor:
    """Multi-step LIF written as a plain autograd loop over ``x[t]`` (``x: [T, ...]``).

    Readable oracle for tests; the model uses :class:`LIFFunction`.
    """
    v = torch.full_like(x[0], p.v_reset)
    out = []
    for t in range(x.shape[0]):
        h = _charge(x[t], v, p)
        if p.spike_max == 1:
            s = _SigmoidHeaviside.apply(h - p.v_th, p.alpha)
            sr = s.detach() if p.detach_reset else s
            if p.soft_reset:
                v = h - sr * p.v_th
            else:
                v = h * (1.0 - sr) + p.v_reset * sr
            out.append(s)
        else:
            s = _RoundClampSTE.apply(h, p.spike_max)
            sr = s.detach() if p.detach_reset else s
            v = h - sr
            out.append(s / p.spike_max)
    return torch.stack(out)


# =========================================================================== torch backend
def _torch_forward(x: torch.Tensor, p: LIFParams, store_h: bool):
    """Forward loop with preallocated buffers; the ops and their order equal ``lif_reference``.

    Returns ``(spikes, h)`` (``h`` is None unless ``store_h``).
    """
    T = x.shape[0]
    s_seq = torch.empty_like(x, memory_format=torch.contiguous_format)
    h_seq = torch.empty_like(s_seq) if store_h else None
    h_tmp = None if store_h else torch.empty_like(s_seq[0])
    v = torch.full_like(s_seq[0], p.v_reset)
    tmp = torch.empty_like(v)
    d, tau, vr, th = p.spike_max, p.tau, p.v_reset, p.v_th
    for t in range(T):
        h = h_seq[t] if store_h else h_tmp
        xt = x[t]
        # charge (same operations as _charge)
        if p.decay_input:
            if vr == 0.0:
                torch.sub(xt, v, out=tmp)
            else:
                torch.sub(v, vr, out=tmp)
                torch.sub(xt, tmp, out=tmp)
            tmp.div_(tau)
            torch.add(v, tmp, out=h)
        else:
            if vr == 0.0:
                torch.div(v, tau, out=tmp)
            else:
                torch.sub(v, vr, out=tmp)
                tmp.div_(tau)
            torch.sub(v, tmp, out=h)
            h.add_(xt)
        st = s_seq[t]
        if d == 1:
            torch.ge(h, th, out=st)
            if p.soft_reset:  # v = h - s * v_th  (s * v_th is exact: s is 0 or 1)
                torch.mul(st, th, out=tmp)
                torch.sub(h, tmp, out=v)
            else:  # v = h * (1 - s) + v_reset * s  (the "+ 0 * s" term is exact for v_reset 0)
                torch.neg(st, out=tmp).add_(1.0)  # 1 - s
                torch.mul(h, tmp, out=v)
                if vr != 0.0:
                    torch.mul(st, vr, out=tmp)
                    v.add_(tmp)
        else:
            torch.round(h, out=tmp)
            tmp.clamp_(0, d)
            torch.sub(h, tmp, out=v)
            torch.div(tmp, d, out=st)
    return s_seq, h_seq


def _torch_backward(g: torch.Tensor, h_seq: torch.Tensor, p: LIFParams) -> torch.Tensor:
    """Reverse-time loop; overwrites ``h_seq`` with the input gradient and returns it."""
    T = h_seq.shape[0]
    d, tau, th, alpha = p.spike_max, p.tau, p.v_th, p.alpha
    gh = torch.empty_like(h_seq[0])  # dL/dh[t]
    a = torch.empty_like(gh)  # scratch: surrogate / straight-through derivative
    b = torch.empty_like(gh)  # scratch: dv[t]/dh[t]
    gv = None  # dL/dv[t] coming back from step t + 1 (None: zero)
    for t in range(T - 1, -1, -1):
        h = h_seq[t]
        if d == 1:
            torch.sub(h, th, out=a)
            a.mul_(alpha).sigmoid_()
            torch.neg(a, out=b).add_(1.0)
            a.mul_(b).mul_(alpha)  # alpha * sig * (1 - sig)
            torch.mul(g[t], a, out=gh)
            if gv is not None:
                if p.soft_reset:
                    if p.detach_reset:
                        gh.add_(gv)
                    else:  # 1 - v_th * sg
                        torch.mul(a, th, out=b)
                        b.neg_().add_(1.0)
                        gh.addcmul_(gv, b)
                else:
                    torch.lt(h, th, out=b)  # 1 - s
                    if not p.detach_reset:  # + (v_reset - h) * sg
                        b.addcmul_(torch.rsub(h, p.v_reset), a)
                    gh.addcmul_(gv, b)
        else:
            torch.gt(h, 0, out=a)
            a.mul_(h < d)  # straight-through inside (0, D)
            torch.mul(g[t], a, out=gh)
            gh.div_(d)
            if gv is not None:
                if p.detach_reset:
                    gh.add_(gv)
                else:
                    torch.neg(a, out=b).add_(1.0)
                    gh.addcmul_(gv, b)
        # dL/dx[t] goes into the storage of h[t] (no longer needed)
        if p.decay_input:
            torch.div(gh, tau, out=h)
        else:
            h.copy_(gh)
        if gv is None:
            gv = torch.empty_like(gh)
        # dh[t]/dv[t-1] path: gh - gh / tau
        if p.decay_input:
            torch.sub(gh, h, out=gv)
        else:
            torch.div(gh, tau, out=gv)
            torch.sub(gh, gv, out=gv)
    return h_seq


# =========================================================================== native backend
_NATIVE_SRC = r"""
/* spikevideoformer multi-step LIF kernels (float32). Built with -ffp-contract=off and no
   fast-math, so the forward arithmetic is bit-identical to the PyTorch reference.
   Layout: x[t * N + n]; each call handles neurons [n0, n1) in blocks of CH, with the time
   loop outside one vectorisable loop over the block (one read of x, one write of h and s). */
#include <math.h>
#include <stdint.h>

#define CH 512

static inline float svf_exp(float x) {
    /* exp(x) on [-87, 88] (clamped), Cephes polynomial, about 1 ulp; vectorisable */
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float fx = nearbyintf(x * 1.44269504088896341f);
    float r = x - fx * 0.693359375f;
    r = r - fx * -2.12194440e-4f;
    float r2 = r * r;
    float y = 1.9875691500E-4f;
    y = y * r + 1.3981999507E-3f;
    y = y * r + 8.3334519073E-3f;
    y = y * r + 4.1665795894E-2f;
    y = y * r + 1.6666665459E-1f;
    y = y * r + 5.0000001201E-1f;
    y = y * r2 + r + 1.0f;
    union { int32_t i; float f; } u;
    u.i = ((int32_t)fx + 127) << 23;
    return y * u.f;
}

/* charge: the operations, in the order, of layers.neuron._charge */
#define CHARGE(vv, xx) (decay ? (vr0 ? (vv) + ((xx) - (vv)) / tau              \
                                     : (vv) + ((xx) - ((vv) - vr)) / tau)      \
                              : (vr0 ? (vv) - (vv) / tau + (xx)                \
                                     : (vv) - ((vv) - vr) / tau + (xx)))

#define FWD_STEP(NAME, STORE, FIRE)                                                        \
static void NAME(const float* restrict xt, float* restrict ht, float* restrict st,         \
                 float* restrict v, long m, int decay, int vr0, float tau, float vth,      \
                 float vr, float fd) {                                                     \
    for (long i = 0; i < m; i++) {                                                         \
        const float h = CHARGE(v[i], xt[i]);                                               \
        FIRE                                                                               \
        STORE                                                                              \
    }                                                                                      \
}
/* hard reset: v = h * (1 - s) + v_reset * s ; soft: v = h - s * v_th ;
   Integer-LIF: s = clamp(round(h), 0, D), v = h - s, output s / D */
#define HARD { const float s = h >= vth ? 1.0f : 0.0f; v[i] = h * (1.0f - s) + vr * s; st[i] = s; }
#define SOFT { const float s = h >= vth ? 1.0f : 0.0f; v[i] = h - s * vth; st[i] = s; }
#define INTG { const float r = nearbyintf(h);                                             \
               const float s = r < 0.0f ? 0.0f : (r > fd ? fd : r);                       \
               v[i] = h - s; st[i] = s / fd; }
#define KEEP ht[i] = h;
#define DROP (void)ht;
FWD_STEP(fwd_hard_h, KEEP, HARD)
FWD_STEP(fwd_hard, DROP, HARD)
FWD_STEP(fwd_soft_h, KEEP, SOFT)
FWD_STEP(fwd_soft, DROP, SOFT)
FWD_STEP(fwd_int_h, KEEP, INTG)
FWD_STEP(fwd_int, DROP, INTG)

typedef void (*fwd_fn)(const float* restrict, float* restrict, float* restrict,
                       float* restrict, long, int, int, float, float, float, float);

/* mode bits: 1 decay_input, 2 soft_reset, 4 detach_reset, 8 v_reset == 0 */
int svf_lif_forward(const float* x, float* hs, float* ss, long T, long N, long n0, long n1,
                    float tau, float vth, float vr, int mode, int d) {
    const int decay = mode & 1, soft = (mode >> 1) & 1, vr0 = (mode >> 3) & 1;
    const int store = hs != 0;
    fwd_fn f = d > 1 ? (store ? fwd_int_h : fwd_int)
                     : soft ? (store ? fwd_soft_h : fwd_soft) : (store ? fwd_hard_h : fwd_hard);
    float v[CH];
    for (long c0 = n0; c0 < n1; c0 += CH) {
        const long m = (n1 - c0) < CH ? (n1 - c0) : CH;
        for (long i = 0; i < m; i++) v[i] = vr;
        for (long t = 0; t < T; t++)
            f(x + t * N + c0, store ? hs + t * N + c0 : 0, ss + t * N + c0, v, m, decay, vr0,
              tau, vth, vr, (float)d);
    }
    return 0;
}

#define BWD_STEP(NAME, DERIV, DV)                                                          \
static void NAME(const float* restrict gt, float* restrict ht, float* restrict gv, long m, \
                 int decay, float tau, float vth, float vr, float alpha, float fd) {       \
    for (long i = 0; i < m; i++) {                                                         \
        const float h = ht[i];                                                             \
        DERIV                                                                              \
        const float gh = gt[i] * sg + gv[i] * (DV);                                        \
        const float gx = gh / tau;                                                         \
        ht[i] = decay ? gx : gh;                                                           \
        gv[i] = gh - gx;                                                                   \
    }                                                                                      \
}
/* surrogate: sg = alpha * sig * (1 - sig), sig = sigmoid(alpha * (h - v_th)); s = h >= v_th */
#define SIGM const float sig = 1.0f / (1.0f + svf_exp(-(alpha * (h - vth))));               \
             const float sg = alpha * sig * (1.0f - sig);                                  \
             const float s = h >= vth ? 1.0f : 0.0f; (void)s;
/* Integer-LIF: straight-through 1/D inside (0, D); ste is the indicator */
#define STE  const float ste = (h > 0.0f && h < fd) ? 1.0f : 0.0f;                         \
             const float sg = ste / fd;
BWD_STEP(bwd_hard_det, SIGM, 1.0f - s)
BWD_STEP(bwd_hard, SIGM, (1.0f - s) + (vr - h) * sg)
BWD_STEP(bwd_soft_det, SIGM, 1.0f)
BWD_STEP(bwd_soft, SIGM, 1.0f - vth * sg)
BWD_STEP(bwd_int_det, STE, 1.0f)
BWD_STEP(bwd_int, STE, 1.0f - ste)

typedef void (*bwd_fn)(const float* restrict, float* restrict, float* restrict, long, int,
                       float, float, float, float, float);

/* hg holds h on entry and the input gradient on exit (in place, one buffer). */
int svf_lif_backward(const float* g, float* hg, long T, long N, long n0, long n1, float tau,
                     float vth, float vr, int mode, int d, float alpha) {
    const int decay = mode & 1, soft = (mode >> 1) & 1, detach = (mode >> 2) & 1;
    bwd_fn f = d > 1 ? (detach ? bwd_int_det : bwd_int)
                     : soft ? (detach ? bwd_soft_det : bwd_soft)
                            : (detach ? bwd_hard_det : bwd_hard);
    float gv[CH];
    for (long c0 = n0; c0 < n1; c0 += CH) {
        const long m = (n1 - c0) < CH ? (n1 - c0) : CH;
        for (long i = 0; i < m; i++) gv[i] = 0.0f;
        for (long t = T - 1; t >= 0; t--)
            f(g + t * N + c0, hg + t * N + c0, gv, m, decay, tau, vth, vr, alpha, (float)d);
    }
    return 0;
}
"""

_NATIVE_LOCK = threading.Lock()
_NATIVE: dict = {}  # "lib" -> ctypes.CDLL or None, "error" -> str, "build_s" -> float
_POOL: dict = {}  # "pid" -> owner pid, "pool" -> ThreadPoolExecutor


def _cache_dir() -> str:
    base = os.environ.get("SVF_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "spikevideoformer")
    return base


def _cpu_signature() -> str:
    """CPU identity for the cache key (the kernel is built with -march=native)."""
    sig = platform.machine() + platform.system()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "model name", "Features", "CPU part")):
                    sig += line
                    if line.startswith(("flags", "Features")):
                        break
    except OSError:
        pass
    return sig


def _build_native() -> ctypes.CDLL:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        raise RuntimeError("no C compiler found (cc/gcc/clang)")
    flag_sets = (
        ["-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-std=c99"],
        ["-O3", "-ffp-contract=off", "-fno-math-errno", "-std=c99"],
    )
    key = hashlib.sha256((_NATIVE_SRC + cc + repr(flag_sets) + _cpu_signature()).encode())
    name = f"svf_lif_{key.hexdigest()[:16]}.so"
    errors = []
    uid = os.getuid() if hasattr(os, "getuid") else 0
    for d in (_cache_dir(), os.path.join(tempfile.gettempdir(), f"spikevideoformer-{uid}")):
        so = os.path.join(d, name)
        if os.path.exists(so):
            try:
                return ctypes.CDLL(so)
            except OSError as e:  # stale or foreign file: rebuild it
                errors.append(str(e))
        try:
            os.makedirs(d, exist_ok=True)
        except OSError as e:
            errors.append(str(e))
            continue
        src = os.path.join(d, name[:-3] + f".{os.getpid()}.c")
        tmp = os.path.join(d, name + f".{os.getpid()}.tmp")
        with open(src, "w") as f:
            f.write(_NATIVE_SRC)
        try:
            for flags in flag_sets:
                r = subprocess.run([cc, *flags, "-shared", "-fPIC", "-o", tmp, src, "-lm"],
                                   capture_output=True, text=True, timeout=120)
                if r.returncode == 0:
                    os.replace(tmp, so)  # atomic: concurrent builders are harmless
                    return ctypes.CDLL(so)
                errors.append(r.stderr.strip()[-500:])
        finally:
            for f_ in (src, tmp):
                try:
                    os.remove(f_)
                except OSError:
                    pass
    raise RuntimeError("; ".join(errors) or "build failed")


def _native_lib():
    """The compiled kernel (built on first use), or None where it is unavailable."""
    if "lib" in _NATIVE:
        return _NATIVE["lib"]
    with _NATIVE_LOCK:
        if "lib" in _NATIVE:
            return _NATIVE["lib"]
        lib = None
        if os.environ.get("SVF_LIF_NATIVE", "1").strip().lower() in ("0", "false", "no", "off"):
            _NATIVE["error"] = "disabled by SVF_LIF_NATIVE=0"
        elif sys.platform.startswith("win"):
            _NATIVE["error"] = "not supported on Windows"
        else:
            import time
            t0 = time.perf_counter()
            try:
                lib = _build_native()
                c_f, c_l, c_i, c_p = ctypes.c_float, ctypes.c_long, ctypes.c_int, ctypes.c_void_p
                lib.svf_lif_forward.argtypes = [c_p, c_p, c_p, c_l, c_l, c_l, c_l, c_f, c_f, c_f,
                                                c_i, c_i]
                lib.svf_lif_forward.restype = c_i
                lib.svf_lif_backward.argtypes = [c_p, c_p, c_l, c_l, c_l, c_l, c_f, c_f, c_f, c_i,
                                                 c_i, c_f]
                lib.svf_lif_backward.restype = c_i
            except Exception as e:  # noqa: BLE001 - any failure means "use the torch backend"
                _NATIVE["error"] = f"{type(e).__name__}: {e}"
                lib = None
            _NATIVE["build_s"] = time.perf_counter() - t0
        _NATIVE["lib"] = lib
        return lib


_MIN_PER_THREAD = 1 << 17  # elements (T * chunk) below which one thread does the work


def _run_chunks(fn, args_before, args_after, T: int, N: int) -> None:
    """Call ``fn(*args_before, n0, n1, *args_after)`` over neuron ranges, in parallel threads
    (ctypes releases the GIL) when the tensor is large and torch may use several threads."""
    k = max(1, min(torch.get_num_threads(), (T * N) // _MIN_PER_THREAD))
    if k == 1:
        fn(*args_before, 0, N, *args_after)
        return
    step = -(-N // k)
    step = -(-step // 16) * 16  # keep chunk starts 64-byte aligned
    ranges = [(a, min(N, a + step)) for a in range(0, N, step)]
    pid = os.getpid()
    if _POOL.get("pid") != pid:  # (re)create after fork: threads do not survive it
        from concurrent.futures import ThreadPoolExecutor
        _POOL["pool"] = ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 2) - 1),
                                           thread_name_prefix="svf-lif")
        _POOL["pid"] = pid
    futs = [_POOL["pool"].submit(fn, *args_before, a, b, *args_after) for a, b in ranges[1:]]
    fn(*args_before, ranges[0][0], ranges[0][1], *args_after)
    for f in futs:
        f.result()


def _mode(p: LIFParams) -> int:
    return (int(p.decay_input) | (int(p.soft_reset) << 1) | (int(p.detach_reset) << 2)
            | (int(p.v_reset == 0.0) << 3))


def _native_forward(x: torch.Tensor, p: LIFParams, store_h: bool):
    lib = _native_lib()
    x = x.contiguous()
    T = x.shape[0]
    N = x.numel() // T
    s = torch.empty_like(x)
    h = torch.empty_like(x) if store_h else None
    _run_chunks(lib.svf_lif_forward, (x.data_ptr(), h.data_ptr() if store_h else None,
                                      s.data_ptr(), T, N),
                (p.tau, float(p.v_th), p.v_reset, _mode(p), p.spike_max), T, N)
    return s, h


def _native_backward(g: torch.Tensor, h: torch.Tensor, p: LIFParams) -> torch.Tensor:
    lib = _native_lib()
    g = g.contiguous()
    T = h.shape[0]
    N = h.numel() // T
    _run_chunks(lib.svf_lif_backward, (g.data_ptr(), h.data_ptr(), T, N),
                (p.tau, float(p.v_th), p.v_reset, _mode(p), p.spike_max, p.alpha), T, N)
    return h


# =========================================================================== triton backend
_TRITON: dict = {}


def _triton_kernels():
    """Triton kernels (CUDA float32) from ``_lif_triton``, or None if triton is unavailable."""
    if "k" in _TRITON:
        return _TRITON["k"]
    try:
        import triton

        from . import _lif_triton
        _TRITON["k"] = (triton, _lif_triton.lif_fwd_kernel, _lif_triton.lif_bwd_kernel)
    except Exception as e:  # noqa: BLE001 - any failure means "use the torch backend"
        _TRITON["k"], _TRITON["error"] = None, f"{type(e).__name__}: {e}"
    return _TRITON["k"]


_TRITON_BLOCK = 512


def _triton_forward(x: torch.Tensor, p: LIFParams, store_h: bool):
    triton, fwd, _ = _triton_kernels()
    x = x.contiguous()
    T = x.shape[0]
    N = x.numel() // T
    s = torch.empty_like(x)
    h = torch.empty_like(x) if store_h else s  # dummy pointer when not stored
    grid = (triton.cdiv(N, _TRITON_BLOCK),)
    with torch.cuda.device(x.device):
        fwd[grid](x, h, s, T, N, float(p.tau), float(p.v_th), float(p.v_reset),
                  DECAY=bool(p.decay_input), SOFT=bool(p.soft_reset), VR0=p.v_reset == 0.0,
                  D=int(p.spike_max), STORE=store_h, BLOCK=_TRITON_BLOCK)
    return s, (h if store_h else None)


def _triton_backward(g: torch.Tensor, h: torch.Tensor, p: LIFParams) -> torch.Tensor:
    triton, _, bwd = _triton_kernels()
    g = g.contiguous()
    T = h.shape[0]
    N = h.numel() // T
    grid = (triton.cdiv(N, _TRITON_BLOCK),)
    with torch.cuda.device(h.device):
        bwd[grid](g, h, T, N, float(p.tau), float(p.v_th), float(p.v_reset), float(p.alpha),
                  DECAY=bool(p.decay_input), SOFT=bool(p.soft_reset),
                  DETACH=bool(p.detach_reset), D=int(p.spike_max), BLOCK=_TRITON_BLOCK)
    return h


# =========================================================================== backend choice
LIF_BACKENDS = ("auto", "native", "triton", "torch")
_BACKEND = {"name": os.environ.get("SVF_LIF_BACKEND", "auto").strip().lower() or "auto"}
if _BACKEND["name"] not in LIF_BACKENDS:
    warnings.warn(f"SVF_LIF_BACKEND={_BACKEND['name']!r} is not one of {LIF_BACKENDS}; "
                  "using 'auto'")
    _BACKEND["name"] = "auto"


def set_lif_backend(name: str) -> str:
    """Select the LIF implementation: ``"auto"`` (default), ``"native"``, ``"triton"`` or
    ``"torch"``. A backend that cannot handle a call (device, dtype, tensor threshold) falls
    back to ``"torch"``. Returns the previous setting (env: ``SVF_LIF_BACKEND``)."""
    name = str(name).strip().lower()
    if name not in LIF_BACKENDS:
        raise ValueError(f"LIF backend must be one of {LIF_BACKENDS}, got {name!r}")
    old, _BACKEND["name"] = _BACKEND["name"], name
    return old


def get_lif_backend() -> str:
    """The configured backend name (see :func:`set_lif_backend`)."""
    return _BACKEND["name"]


def available_lif_backends() -> dict[str, str]:
    """``{backend: "ok" | reason it is unavailable}`` on this machine (builds the native kernel)."""
    out = {"torch": "ok"}
    out["native"] = "ok" if _native_lib() is not None else _NATIVE.get("error", "unavailable")
    if not torch.cuda.is_available():
        out["triton"] = "no CUDA device"
    else:
        out["triton"] = ("ok" if _triton_kernels() is not None
                         else _TRITON.get("error", "unavailable"))
    return out


def _graph_capture() -> bool:
    """True while torch.jit tracing or torch.compile / torch.export capture a graph: the
    kernels are opaque calls there, so the traceable torch backend is used instead."""
    if torch.jit.is_tracing():
        return True
    is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    return bool(is_compiling is not None and is_compiling())


def lif_backend_for(x: torch.Tensor, p: LIFParams = LIFParams()) -> str:
    """The backend that :class:`LIFFunction` uses for this input and these parameters."""
    want = _BACKEND["name"]
    scalar_th = not isinstance(p.v_th, torch.Tensor)
    if x.dtype == torch.float32 and scalar_th and x.numel() > 0 and not _graph_capture():
        if x.device.type == "cpu" and want in ("auto", "native") and _native_lib() is not None:
            return "native"
        if x.device.type == "cuda" and want in ("auto", "triton") and _triton_kernels() is not None:
            return "triton"
    return "torch"


_FORWARD = {"native": _native_forward, "triton": _triton_forward, "torch": _torch_forward}
_BACKWARD = {"native": _native_backward, "triton": _triton_backward, "torch": _torch_backward}


class LIFFunction(torch.autograd.Function):
    """Fused multi-step LIF: forward loop without autograd, backward loop in reverse time.

    Saves only the pre-spike membrane ``h`` of every step (input dtype); spikes are recomputed
    from it, and backward writes the input gradient into that buffer (no extra allocation).
    Because of that in-place reuse, one graph can be back-propagated through an LIF once
    (``retain_graph=True`` followed by a second backward raises a clear error); a backward with
    ``create_graph=True`` keeps ``h`` intact. Gradients equal :func:`lif_reference` (tests
    check forward and backward for every backend).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: LIFParams) -> torch.Tensor:  # type: ignore[override]
        backend = lif_backend_for(x, p)
        s, h = _FORWARD[backend](x, p, True)
        ctx.save_for_backward(h)
        ctx.p, ctx.backend, ctx.consumed = p, backend, False
        return s

    @staticmethod
    def backward(ctx, grad_s: torch.Tensor):  # type: ignore[override]
        if ctx.consumed:
            raise RuntimeError(
                "LIF backward was called twice on the same graph: the fused LIF reuses its saved "
                "membrane buffer for the gradient. Recompute the forward pass, or use "
                "spikevideoformer.layers.neuron.lif_reference for retain_graph workflows.")
        (h,) = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: keep the saved tensor intact
            h = h.detach().clone()
        else:
            ctx.consumed = True
        if grad_s.dtype != h.dtype:
            grad_s = grad_s.to(h.dtype)
        return _BACKWARD[ctx.backend](grad_s, h, ctx.p), None


def lif_multistep(x: torch.Tensor, p: LIFParams = LIFParams()) -> torch.Tensor:
    """Functional multi-step LIF on ``x: [T, ...]`` → spikes of the same shape (SPEC §1)."""
    if x.dim() < 1 or x.shape[0] < 1:
        raise ValueError(f"LIF expects a tensor [T, ...] with T >= 1, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"LIF expects a floating-point tensor, got {x.dtype}")
    if torch.is_grad_enabled() and x.requires_grad:
        s = LIFFunction.apply(x, p)
        if _SPIKE_REG["depth"] and p.spike_max == 1:
            _register_spikes(s)
        return s
    # inference: no autograd node, no saved membrane
    return _FORWARD[lif_backend_for(x, p)](x, p, False)[0]


# =========================================================================== compact spike storage
# storage pointer -> (weakref to the spikes, their version, serial number of the registration)
_SPIKE_REG: dict = {"depth": 0, "live": {}, "serial": 0}


def _register_spikes(s: torch.Tensor) -> None:
    live = _SPIKE_REG["live"]
    if len(live) > 4096:  # drop entries whose tensors are gone
        for k in [k for k, ent in live.items() if ent[0]() is None]:
            del live[k]
    _SPIKE_REG["serial"] += 1
    live[s.untyped_storage().data_ptr()] = (weakref.ref(s), s._version, _SPIKE_REG["serial"])


def _unpack_spikes(obj):
    if isinstance(obj, _PackedSpikes):
        return obj.bits.to(obj.dtype)
    return obj


class _PackedSpikes:
    __slots__ = ("bits", "dtype")

    def __init__(self, bits: torch.Tensor, dtype: torch.dtype) -> None:
        self.bits, self.dtype = bits, dtype


class compact_spike_storage:
    """Context manager: binary LIF spikes that *other* layers save for backward (the input of
    every convolution / linear layer after a neuron) are kept as ``torch.bool`` instead of
    float — 4x less memory for those activations, bit-exact gradients, ~no time cost::

        with compact_spike_storage():
            loss = criterion(model(video), target)
        loss.backward()

    Only tensors that are (views of) unmodified spike outputs of :func:`lif_multistep` with
    ``spike_max = 1`` are packed; everything else is saved as usual. Built on
    ``torch.autograd.graph.saved_tensors_hooks``; the forward pass must run inside the block,
    backward may run outside it.
    """

    def __init__(self) -> None:
        self._cache: dict = {}
        self._hooks = None

    def _pack(self, t: torch.Tensor):
        live = _SPIKE_REG["live"]
        if not live or not t.is_floating_point():
            return t
        try:
            ptr = t.untyped_storage().data_ptr()
        except (RuntimeError, NotImplementedError):
            return t
        ent = live.get(ptr)
        if ent is None:
            return t
        base = ent[0]()
        if base is None or base._version != ent[1] or t._version != ent[1] or t.dtype != base.dtype:
            return t
        # the serial tells apart spikes that reuse the memory of freed ones
        key = (ent[2], t.storage_offset(), tuple(t.shape), tuple(t.stride()))
        packed = self._cache.get(key)
        if packed is None:
            packed = _PackedSpikes(t.detach() != 0, t.dtype)
            self._cache[key] = packed
        return packed

    def __enter__(self) -> "compact_spike_storage":
        _SPIKE_REG["depth"] += 1
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, _unpack_spikes)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)
        self._hooks = None
        self._cache.clear()
        _SPIKE_REG["depth"] -= 1
        if not _SPIKE_REG["depth"]:
            _SPIKE_REG["live"].clear()


class LIF(nn.Module):
    """Multi-step LIF / Integer-LIF neuron applied to ``[T, ...]`` (time first), SPEC §1.

    ``LIF(tau=2.0, v_th=1.0, v_reset=0.0, soft_reset=False, detach_reset=True, alpha=4.0,
    spike_max=1)``. State is local to one forward call. ``v_th`` is a buffer-free float; the
    folding code may change it (it absorbs scale and BatchNorm at inference).
    """

    def __init__(
        self,
        tau: float = 2.0,
        v_th: float = 1.0,
        v_reset: float = 0.0,
        soft_reset: bool = False,
        detach_reset: bool = True,
        alpha: float = 4.0,
        spike_max: int = 1,
        decay_input: bool = True,
        temporal_state: bool = True,
    ) -> None:
        super().__init__()
        self.temporal_state = bool(temporal_state)
        self.params = LIFParams(
            tau=float(tau), v_th=float(v_th), v_reset=float(v_reset), decay_input=decay_input,
            soft_reset=soft_reset, detach_reset=detach_reset, alpha=float(alpha),
            spike_max=int(spike_max),
        )

    @property
    def spike_max(self) -> int:
        return self.params.spike_max

    @property
    def v_th(self) -> float:
        return self.params.v_th

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.temporal_state:
            # ablation "no temporal state": membrane reset at every frame (SPEC §3)
            return lif_multistep(x.reshape(1, -1, *x.shape[2:]), self.params).reshape(x.shape)
        return lif_multistep(x, self.params)

    def extra_repr(self) -> str:
        p = self.params
        s = f"tau={p.tau}, v_th={p.v_th}, v_reset={p.v_reset}"
        if p.soft_reset:
            s += ", soft_reset=True"
        if p.spike_max > 1:
            s += f", spike_max={p.spike_max}"
        if not self.temporal_state:
            s += ", temporal_state=False"
        return s


NEURON_KINDS = ("lif", "relu")


@dataclass(frozen=True)
class NeuronSpec:
    """How a model builds its neurons: ``kind="lif"`` (spiking) or ``"relu"`` (ANN counterpart).

    ``spike_max > 1`` selects Integer-LIF; ``temporal_state=False`` resets the membrane at every
    frame (ablation). ``make(v_th=...)`` overrides the threshold (attention LIF of SDSA: 0.5).
    """

    kind: str = "lif"
    tau: float = 2.0
    v_th: float = 1.0
    v_reset: float = 0.0
    soft_reset: bool = False
    detach_reset: bool = True
    alpha: float = 4.0
    spike_max: int = 1
    temporal_state: bool = True

    def __post_init__(self) -> None:
        if self.kind not in NEURON_KINDS:
            raise ValueError(f"neuron kind must be one of {NEURON_KINDS}, got {self.kind!r}")
        LIFParams(tau=self.tau, v_th=self.v_th, spike_max=self.spike_max, alpha=self.alpha)

    @property
    def spiking(self) -> bool:
        return self.kind == "lif"

    def make(self, v_th: float | None = None) -> nn.Module:
        if self.kind == "relu":
            return nn.ReLU()
        return LIF(
            tau=self.tau, v_th=self.v_th if v_th is None else v_th, v_reset=self.v_reset,
            soft_reset=self.soft_reset, detach_reset=self.detach_reset, alpha=self.alpha,
            spike_max=self.spike_max, temporal_state=self.temporal_state,
        )
