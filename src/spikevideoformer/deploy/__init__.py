"""Deployment: fold a trained model into its inference form, export it.

    from spikevideoformer.deploy import fold, export_model
    deployed = fold(model)                       # RepConv factorised/3×3, BN absorbed, thresholds
    export_model(deployed, example, "svf.pt2")   # torch.export (fixed T), or format="onnx"
    IntegerNetwork.from_model(deployed, 8, input_size=(H, W)).save("svf_int8")  # integer-only
"""
from ..layers.inference_neuron import InferenceLIF, lif_inference
from .export import EXPORT_FORMATS, InferenceWrapper, export_model, load_exported
from .fold import bn_affine, dense_repconvs, fold, fold_conv_bn, fold_repconv, is_folded
from .integer import IntegerNetwork

__all__ = [
    "fold", "is_folded", "InferenceLIF", "lif_inference", "fold_conv_bn", "fold_repconv",
    "bn_affine", "dense_repconvs", "export_model", "load_exported", "InferenceWrapper", "EXPORT_FORMATS",
    "IntegerNetwork",
]
