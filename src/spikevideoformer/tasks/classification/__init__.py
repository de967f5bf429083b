"""Video classification: task object, metrics, data builders, train/eval/predict."""
from .data import MODALITY_CHANNELS, build_classification_data
from .metrics import average_views, confusion_matrix, save_confusion_png, topk_correct
from .runner import build_classifier, evaluate_classification, predict_video, train_classification
from .task import ClassificationTask

__all__ = [
    "MODALITY_CHANNELS", "build_classification_data", "average_views", "confusion_matrix",
    "save_confusion_png", "topk_correct", "build_classifier", "evaluate_classification",
    "predict_video", "train_classification", "ClassificationTask",
]
