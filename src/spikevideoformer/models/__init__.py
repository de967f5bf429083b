"""Models: the SpikeVideoFormer backbone (with its stage map, :data:`STAGE_LAYOUT`), the
registry and official-checkpoint import."""
from .backbone import STAGE_LAYOUT, STAGES, SpikeVideoFormer, check_video
from .init import residual_norms, set_training_recipe, zero_init_residual
from .official import (
    ATT_MODES, convert_official_state_dict, infer_config_from_state_dict,
    load_official_checkpoint, load_state_dict_checked,
)
from .registry import MODEL_SIZES, create_model, list_models, make_neuron_spec

__all__ = [
    "zero_init_residual", "residual_norms", "set_training_recipe",
    "SpikeVideoFormer", "check_video", "STAGES", "STAGE_LAYOUT", "ATT_MODES", "convert_official_state_dict",
    "infer_config_from_state_dict", "load_official_checkpoint", "load_state_dict_checked",
    "MODEL_SIZES", "create_model", "list_models", "make_neuron_spec",
]
