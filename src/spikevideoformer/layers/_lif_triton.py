"""Triton kernels of the multi-step LIF (CUDA, float32); imported lazily by ``lif_backends.py``.

Same layout and equations as the native C kernel (``_lif_native.py``): each program owns
``BLOCK`` neurons and loops over time. The charge is ``neuron.charge`` (docs/design.md eqs.
(1.1)/(1.5)) with IEEE-rounded division (``div_rn``), so the spikes are bit-identical to
PyTorch's. Backward writes the input gradient into the saved ``h`` buffer.
(No ``from __future__ import annotations`` here: Triton reads the ``tl.constexpr`` hints.)
"""
import torch
import triton
import triton.language as tl

try:  # Triton >= 3
    from triton.language.extra import libdevice as _libdevice
except ImportError:  # pragma: no cover - Triton 2.x
    from triton.language.extra.cuda import libdevice as _libdevice


@triton.jit
def lif_fwd_kernel(x_ptr, h_ptr, s_ptr, T, N, tau, vth, vr, DECAY: tl.constexpr,
                   SOFT: tl.constexpr, VR0: tl.constexpr, D: tl.constexpr, STORE: tl.constexpr,
                   BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    v = tl.zeros([BLOCK], dtype=tl.float32) + vr
    for t in range(T):
        o = t * N + offs
        x = tl.load(x_ptr + o, mask=mask, other=0.0)
        if DECAY:
            if VR0:
                h = v + tl.math.div_rn(x - v, tau)
            else:
                h = v + tl.math.div_rn(x - (v - vr), tau)
        else:
            if VR0:
                h = (v - tl.math.div_rn(v, tau)) + x
            else:
                h = (v - tl.math.div_rn(v - vr, tau)) + x
        if D == 1:
            fire = h >= vth
            s = tl.where(fire, 1.0, 0.0)
            if SOFT:
                v = tl.where(fire, h - vth, h)
            else:
                v = tl.where(fire, vr, h)
            tl.store(s_ptr + o, s, mask=mask)
        else:
            r = _libdevice.rint(h)
            s = tl.minimum(tl.maximum(r, 0.0), D * 1.0)
            v = h - s
            tl.store(s_ptr + o, tl.math.div_rn(s, D * 1.0), mask=mask)
        if STORE:
            tl.store(h_ptr + o, h, mask=mask)


@triton.jit
def lif_bwd_kernel(g_ptr, h_ptr, T, N, tau, vth, vr, alpha, DECAY: tl.constexpr,
                   SOFT: tl.constexpr, DETACH: tl.constexpr, D: tl.constexpr,
                   BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    gv = tl.zeros([BLOCK], dtype=tl.float32)
    for i in range(T):
        t = T - 1 - i
        o = t * N + offs
        h = tl.load(h_ptr + o, mask=mask, other=0.0)
        g = tl.load(g_ptr + o, mask=mask, other=0.0)
        if D == 1:
            # accurate exp and IEEE division (tl.sigmoid's fast exp drifts over long T)
            sig = tl.math.div_rn(1.0, 1.0 + _libdevice.exp(-(alpha * (h - vth))))
            sg = alpha * sig * (1.0 - sig)
            s = tl.where(h >= vth, 1.0, 0.0)
            if SOFT:
                if DETACH:
                    dv = tl.zeros_like(h) + 1.0
                else:
                    dv = 1.0 - vth * sg
            else:
                if DETACH:
                    dv = 1.0 - s
                else:
                    dv = (1.0 - s) + (vr - h) * sg
            gh = g * sg + gv * dv
        else:
            ste = tl.where((h > 0.0) & (h < D * 1.0), 1.0, 0.0)
            if DETACH:
                dv = tl.zeros_like(h) + 1.0
            else:
                dv = 1.0 - ste
            gh = g * tl.math.div_rn(ste, D * 1.0) + gv * dv
        gx = tl.math.div_rn(gh, tau)
        if DECAY:
            tl.store(h_ptr + o, gx, mask=mask)
        else:
            tl.store(h_ptr + o, gh, mask=mask)
        gv = gh - gx


NEURONS_PER_PROGRAM = 512  # the kernels' BLOCK


def triton_forward(x: torch.Tensor, p, store_h: bool):
    """``(spikes, h)`` of ``lif_fwd_kernel`` (``h`` None unless ``store_h``); ``p``: NeuronParams."""
    x = x.contiguous()
    T = x.shape[0]
    N = x.numel() // T
    s = torch.empty_like(x)
    h = torch.empty_like(x) if store_h else s  # dummy pointer when not stored
    grid = (triton.cdiv(N, NEURONS_PER_PROGRAM),)
    with torch.cuda.device(x.device):
        lif_fwd_kernel[grid](x, h, s, T, N, float(p.tau), float(p.v_th), float(p.v_reset),
                             DECAY=bool(p.decay_input), SOFT=bool(p.soft_reset),
                             VR0=p.v_reset == 0.0, D=int(p.spike_max), STORE=store_h,
                             BLOCK=NEURONS_PER_PROGRAM)
    return s, (h if store_h else None)


def triton_backward(g: torch.Tensor, h: torch.Tensor, p) -> torch.Tensor:
    """``lif_bwd_kernel``: overwrites ``h`` with the input gradient and returns it."""
    g = g.contiguous()
    T = h.shape[0]
    N = h.numel() // T
    grid = (triton.cdiv(N, NEURONS_PER_PROGRAM),)
    with torch.cuda.device(h.device):
        lif_bwd_kernel[grid](g, h, T, N, float(p.tau), float(p.v_th), float(p.v_reset),
                             float(p.alpha), DECAY=bool(p.decay_input),
                             SOFT=bool(p.soft_reset), DETACH=bool(p.detach_reset),
                             D=int(p.spike_max), BLOCK=NEURONS_PER_PROGRAM)
    return h
