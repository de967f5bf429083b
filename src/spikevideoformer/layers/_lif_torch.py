"""PyTorch backend of the fused LIF: preallocated buffers, any device / dtype (docs/design.md §1).

Forward: ``neuron.charge`` into the stored ``h[t]``, then fire and reset in place (the
operations, in the order, of ``neuron.fire`` / ``neuron.reset``). Backward: reverse-time loop
of the surrogate gradient (eqs. (1.6), (1.8)), written into the saved ``h``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .neuron import NeuronParams


def torch_forward(x: torch.Tensor, p: NeuronParams, store_h: bool):
    """Forward loop with preallocated buffers; returns ``(spikes, h)`` (``h`` None unless stored)."""
    from .neuron import charge  # neuron.py imports the dispatcher that imports this module

    T = x.shape[0]
    s_seq = torch.empty_like(x, memory_format=torch.contiguous_format)
    h_seq = torch.empty_like(s_seq) if store_h else None
    h_tmp = None if store_h else torch.empty_like(s_seq[0])
    v = torch.full_like(s_seq[0], p.v_reset)
    tmp = torch.empty_like(v)
    d, vr, th = p.spike_max, p.v_reset, p.v_th
    for t in range(T):
        h = charge(x[t], v, p, out=h_seq[t] if store_h else h_tmp)
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


def torch_backward(g: torch.Tensor, h_seq: torch.Tensor, p: NeuronParams) -> torch.Tensor:
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
