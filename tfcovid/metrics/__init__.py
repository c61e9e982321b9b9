"""Segmentation metrics: overlap (Dice, IoU, ...), the Inf-Net toolbox measures, summaries.

NumPy per-image functions for evaluation reports live in `overlap`, `saliency` and `summary`;
`dice_score` and `iou_score` (``keras.ops``, for tensors) load Keras on first use, so importing
this package stays cheap.
"""

from tfcovid.metrics.overlap import (
    METRIC_NAMES,
    Confusion,
    binarize_prediction,
    binarize_truth,
    binary_overlap,
    confusion_counts,
    labels_from_prediction,
    multiclass_confusion_counts,
    multiclass_overlap,
    overlap_from_counts,
)
from tfcovid.metrics.saliency import (
    THRESHOLDS,
    e_measure,
    mae,
    normalize_prediction,
    roc_auc,
    s_measure,
    threshold_curves,
    weighted_f_measure,
)
from tfcovid.metrics.summary import (
    Summary,
    evaluate_binary,
    evaluate_multiclass,
    evaluate_threshold_sweep,
    format_table,
    summarize,
)

_TENSOR_FUNCTIONS = ("dice_score", "iou_score")

__all__ = [
    "METRIC_NAMES", "THRESHOLDS", "Confusion", "Summary", "binarize_prediction", "binarize_truth",
    "binary_overlap", "confusion_counts", "dice_score", "e_measure", "evaluate_binary",
    "evaluate_multiclass", "evaluate_threshold_sweep", "format_table", "iou_score",
    "labels_from_prediction", "mae", "multiclass_confusion_counts", "multiclass_overlap",
    "normalize_prediction", "overlap_from_counts", "roc_auc", "s_measure", "summarize",
    "threshold_curves", "weighted_f_measure",
]


def __getattr__(name: str):
    if name in _TENSOR_FUNCTIONS:
        from tfcovid.metrics import tensor

        return getattr(tensor, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
