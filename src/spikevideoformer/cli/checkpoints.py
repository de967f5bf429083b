"""Loading the checkpoint a command was given: one of our classification run folders, or an
official/plain state_dict file."""
from __future__ import annotations

from pathlib import Path


def is_run_checkpoint(path: Path) -> bool:
    """A run folder (``model.safetensors`` + ``meta.json``) or one of its two files."""
    return path.is_dir() or path.name in ("model.safetensors", "meta.json")


def load_classification_run(path: Path, other_models: str):
    """``(model, cfg, folder)`` of a classification run checkpoint; ``other_models`` completes
    the error for a checkpoint of another task (what to use instead)."""
    from ..tasks.classification.runner import build_classifier
    from ..tasks.common import load_trained

    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    folder = path if path.is_dir() else path.parent
    try:
        model, cfg, _ = load_trained(folder, build_classifier)
    except KeyError as e:
        raise ValueError(f"{folder} is not a classification checkpoint ({e}); {other_models}") from e
    print(f"loaded {folder}: {cfg.model.name}, attention={cfg.model.attention}, design="
          f"{cfg.model.design}, spike_max={cfg.model.spike_max}, modality={cfg.data.modality}")
    return model, cfg, folder


def load_official(path: Path):
    """An official (or plain) state_dict file as an eval-mode model; errors name the file."""
    from ..models import load_official_checkpoint

    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    model = load_official_checkpoint(str(path))
    print(f"loaded {path}: embed_dim={model.embed_dim}, attention={model.attention}, design={model.design}")
    return model.eval()
