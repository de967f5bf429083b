"""Per-process random state: seeding, and capturing / restoring it for checkpoints."""
from __future__ import annotations

import os
import random
from typing import Any, Dict, Mapping

import numpy as np
import torch

__all__ = ["seed_everything", "capture_rng_state", "restore_rng_state"]


def seed_everything(seed: int, deterministic: bool = True) -> int:
    """Seed python ``random``, numpy and torch (all devices); optionally deterministic kernels.

    ``deterministic=True`` calls ``torch.use_deterministic_algorithms(True, warn_only=True)``,
    disables cuDNN autotuning and sets ``CUBLAS_WORKSPACE_CONFIG`` if unset.
    """
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    return seed


def capture_rng_state() -> Dict[str, Any]:
    """Torch (CPU + every CUDA device), numpy (global) and python ``random`` states.

    Tensors are uint8; everything else is JSON-able (this is what checkpoints store).
    """
    np_state = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "numpy": {"bit_generator": str(np_state[0]), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4]),
                  "keys": torch.from_numpy(np_state[1].astype("<u4").view(np.uint8).copy())},
        "python": [version, list(internal), gauss],
    }


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state` (CUDA states are restored for the devices present)."""
    torch.set_rng_state(state["torch"].cpu().to(torch.uint8))
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available():
        n = min(len(cuda), torch.cuda.device_count())
        torch.cuda.set_rng_state_all([c.cpu().to(torch.uint8) for c in cuda[:n]])
    npst = state["numpy"]
    keys = np.frombuffer(npst["keys"].cpu().numpy().tobytes(), dtype="<u4").astype(np.uint32)
    np.random.set_state((npst["bit_generator"], keys, npst["pos"], npst["has_gauss"],
                         npst["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
