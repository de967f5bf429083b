"""Integer-only spike-driven inference (docs/integer.md).

    from spikevideoformer.deploy.integer import IntegerNetwork
    net = IntegerNetwork.from_model(fold(model), weight_bits=8, input_size=(64, 64))
    result = net.run(clip_uint8)          # [T, H, W, C]; result.logits, result.counts
    net.save("svf_int8")                  # graph.json + tensors.npz, readable without torch

A segmentation model (backbone + a decoder that declares ``deploy_layout()``) gives per-frame
stride-4 logits ``[T, K, H/4, W/4]``; ``segmentation_readout`` is the model's read-out.

``runner.py`` (with ``fixed_point.py``, ``graph_format.py`` and ``counts.py``) imports only
NumPy and runs by file path as well; ``quantize.py`` (with ``builder.py`` and, for a
segmentation model, ``decoder.py``) builds the graph from a torch model.
"""
from .agreement import Agreement, compare, segmentation_readout
from .counts import CountReport, OpCount
from .quantize import IntegerNetwork
from .runner import RunResult, load, run

__all__ = ["IntegerNetwork", "CountReport", "OpCount", "RunResult", "load", "run", "Agreement",
           "compare", "segmentation_readout"]
