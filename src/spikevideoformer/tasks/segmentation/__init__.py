"""Video semantic segmentation task: metrics, datasets, transforms, synthetic data, visualisation."""
from .datasets import (CITYSCAPES_CLASSES, CITYSCAPES_ID_TO_TRAINID, IGNORE_INDEX, CityscapesSequenceDataset,
                       VSPWDataset, cityscapes_labelids_to_trainids)
from .metrics import ConfusionMatrix, MeanVideoConsistency, video_consistency
from .synthetic import SHAPES, SyntheticSegVideos, majority_class_baseline
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
]
