"""Analysis: energy / SOP / firing-rate profiling (docs/design.md §5) and the spike-driven purity check.

    from spikevideoformer.analysis import profile, check_spike_driven
    report = profile(model, video)            # report.table(), report.total_energy_mj
    purity = check_spike_driven(model, video)  # purity.ok, purity.violations

Both observe the model with forward hooks only; the model is never modified.
"""
from .energy import (
    E_AC, E_MAC, EnergyReport, LayerEnergy, NeuronStats, StageEnergy, calibrate_bn, profile,
)
from .purity import PurityReport, Violation, check_spike_driven, is_spike_tensor

__all__ = [
    "profile", "calibrate_bn", "EnergyReport", "LayerEnergy", "NeuronStats", "StageEnergy",
    "E_MAC", "E_AC",
    "check_spike_driven", "PurityReport", "Violation", "is_spike_tensor",
]
