"""Native CPU backend of the fused LIF: a small C kernel built on first use, loaded by ctypes.

Compiled with the system C compiler (no fast-math, no FMA contraction, so spikes stay
bit-identical to the PyTorch reference), cached under ``~/.cache/spikevideoformer``; if no
compiler is found or the build fails the caller falls back to the torch backend.
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
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .neuron import NeuronParams

_NATIVE_SRC = r"""
/* spikevideoformer multi-step LIF kernels (float32). Built with -ffp-contract=off and no
   fast-math, so the forward arithmetic is bit-identical to the PyTorch reference.
   Layout: x[t * N + n]; each call handles neurons [n0, n1) in blocks of CH, with the time
   loop outside one vectorisable loop over the block (one read of x, one write of h and s). */
#include <math.h>
#include <stdint.h>
#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
/* backward flushes subnormal results to zero (FTZ + DAZ for this call only): surrogate tails
   reach ~1e-40, and subnormal gradients slow this loop and every conv backward after it */
#define SVF_FTZ_ON() const unsigned int svf_csr = _mm_getcsr(); _mm_setcsr(svf_csr | 0x8040u)
#define SVF_FTZ_OFF() _mm_setcsr(svf_csr)
#else
#define SVF_FTZ_ON()
#define SVF_FTZ_OFF()
#endif

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

/* charge: the operations, in the order, of layers.neuron.charge */
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
    SVF_FTZ_ON();
    for (long c0 = n0; c0 < n1; c0 += CH) {
        const long m = (n1 - c0) < CH ? (n1 - c0) : CH;
        for (long i = 0; i < m; i++) gv[i] = 0.0f;
        for (long t = T - 1; t >= 0; t--)
            f(g + t * N + c0, hg + t * N + c0, gv, m, decay, tau, vth, vr, alpha, (float)d);
    }
    SVF_FTZ_OFF();
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


def _drop_pool_before_fork() -> None:
    """Join this process's LIF threads before ``fork()`` (DataLoader workers, multiprocessing):
    a child must not inherit a pool whose threads it does not have.  Idle threads exit at
    once; the pool is created again on the next parallel call."""
    pool = _POOL.pop("pool", None)
    _POOL.pop("pid", None)
    if pool is not None:
        pool.shutdown(wait=True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_drop_pool_before_fork)

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
    if _POOL.get("pid") != pid:  # first use, or a fork (see _drop_pool_before_fork)
        from concurrent.futures import ThreadPoolExecutor
        _POOL["pool"] = ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 2) - 1),
                                           thread_name_prefix="svf-lif")
        _POOL["pid"] = pid
    futs = [_POOL["pool"].submit(fn, *args_before, a, b, *args_after) for a, b in ranges[1:]]
    fn(*args_before, ranges[0][0], ranges[0][1], *args_after)
    for f in futs:
        f.result()


def _mode(p: NeuronParams) -> int:
    return (int(p.decay_input) | (int(p.soft_reset) << 1) | (int(p.detach_reset) << 2)
            | (int(p.v_reset == 0.0) << 3))


def _native_forward(x: torch.Tensor, p: NeuronParams, store_h: bool):
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


def _native_backward(g: torch.Tensor, h: torch.Tensor, p: NeuronParams) -> torch.Tensor:
    lib = _native_lib()
    g = g.contiguous()
    T = h.shape[0]
    N = h.numel() // T
    _run_chunks(lib.svf_lif_backward, (g.data_ptr(), h.data_ptr(), T, N),
                (p.tau, float(p.v_th), p.v_reset, _mode(p), p.spike_max, p.alpha), T, N)
    return h
