"""Video semantic segmentation: spike-driven decoder + model, task, train/eval runner, demo,
metrics, datasets, transforms, synthetic data, visualisation."""
from .datasets import (CITYSCAPES_CLASSES, CITYSCAPES_ID_TO_TRAINID, IGNORE_INDEX, CityscapesSequenceDataset,
                       VSPWDataset, cityscapes_labelids_to_trainids)
from .head import DECODER_DIMS, SegSpikeVideoFormer, SpikeSegHead, default_decoder_dim, head_parameter_count
from .metrics import ConfusionMatrix, MeanVideoConsistency, video_consistency
from .synthetic import SHAPES, SyntheticSegVideos, majority_class_baseline
from .task import SegmentationTask, segmentation_loss
from .transforms import (IMAGENET_MEAN, IMAGENET_STD, SegEvalTransform, SegTrainTransform, denormalize, normalize,
                         random_crop, random_flip, random_scale, resize)
from .visualize import PALETTE, colorize, save_segmentation_panel

__all__ = [
    "IGNORE_INDEX", "CITYSCAPES_CLASSES", "CITYSCAPES_ID_TO_TRAINID", "cityscapes_labelids_to_trainids",
    "VSPWDataset", "CityscapesSequenceDataset",
    "ConfusionMatrix", "video_consistency", "MeanVideoConsistency",
    "SHAPES", "SyntheticSegVideos", "majority_class_baseline",
    "IMAGENET_MEAN", "IMAGENET_STD", "random_scale", "random_crop", "random_flip", "resize", "normalize",
    "denormalize", "SegTrainTransform", "SegEvalTransform",
    "PALETTE", "colorize", "save_segmentation_panel",
    "SpikeSegHead", "SegSpikeVideoFormer", "DECODER_DIMS", "default_decoder_dim", "head_parameter_count",
    "SegmentationTask", "segmentation_loss",
    "build_segmentation_model", "train_segmentation", "evaluate_segmentation",
]


def __getattr__(name):  # the runner imports the engine: load it on first use
    if name in ("build_segmentation_model", "train_segmentation", "evaluate_segmentation"):
        from . import runner
        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
