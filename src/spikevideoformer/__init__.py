"""spikevideoformer: SpikeVideoFormer (Zou et al., ICML 2025) as an installable library.

    import spikevideoformer as svf
    model = svf.create_model("svf_15m", num_classes=400)   # hamming attention, joint design
    logits = model(video)                                  # video: float [B, T, 3, H, W]
"""
from . import layers, models
from .models import (
    SpikeVideoFormer, convert_official_state_dict, create_model, list_models,
    load_official_checkpoint,
)

__version__ = "0.1.0"

__all__ = [
    "layers", "models", "SpikeVideoFormer", "create_model", "list_models",
    "convert_official_state_dict", "load_official_checkpoint", "__version__",
]
