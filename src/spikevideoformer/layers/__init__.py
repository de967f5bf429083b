"""Building blocks of the model: spiking neurons (LIF, Integer-LIF; ``neuron.py``, its fast
backends behind ``lif_backends.py``, the deployed ``InferenceLIF``), attention cores and
token groupings, RepConv, and the backbone's blocks (see docs/design.md §1-§3).

It depends only on PyTorch (Triton optionally, for the GPU LIF kernels) and imports no other
part of ``spikevideoformer``.
"""
from .attention import (
    GROUPINGS, dot_explicit, dot_linear, from_tokens, hamming_explicit, hamming_linear,
    resolve_scale, softmax_attention, to_tokens,
)
from .blocks import (
    ATTENTIONS, DESIGNS, MLP, AttentionBranch, ConvBlock, DownSampling, SepConv, SpikeAttention,
    TransformerBlock, per_frame,
)
from .fuse import bn_affine, fuse_conv_bn
from .inference_neuron import InferenceLIF, lif_inference
from .lif_backends import get_lif_backend, set_lif_backend
from .neuron import (
    LIF, LIFFunction, LIFParams, NeuronParams, NeuronSpec, compact_spike_storage, lif_multistep,
    lif_reference,
)
from .repconv import BNAndPad, FusedRepConv, RepConv, bn_zero_response

__all__ = [
    "NeuronParams", "LIF", "LIFFunction", "LIFParams", "NeuronSpec", "lif_multistep",
    "lif_reference", "InferenceLIF", "lif_inference", "get_lif_backend", "set_lif_backend",
    "compact_spike_storage",
    "GROUPINGS", "to_tokens", "from_tokens", "hamming_linear", "dot_linear", "softmax_attention",
    "hamming_explicit", "dot_explicit", "resolve_scale", "ATTENTIONS", "DESIGNS", "MLP",
    "ConvBlock", "DownSampling", "SepConv", "AttentionBranch", "SpikeAttention", "TransformerBlock",
    "per_frame", "bn_affine", "fuse_conv_bn", "BNAndPad", "FusedRepConv", "RepConv",
    "bn_zero_response",
]
