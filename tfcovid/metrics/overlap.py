"""Overlap metrics from confusion counts: Dice, IoU, sensitivity, specificity, precision (NumPy).

Per-image versions for evaluation reports (spec section 10.1). Every metric is a ratio of
confusion counts (TP, FP, FN, TN) of one image and one class:

=============  =============================  ==========================
metric         formula                        also called
=============  =============================  ==========================
dice           2 TP / (2 TP + FP + FN)        F1
iou            TP / (TP + FP + FN)            Jaccard
sensitivity    TP / (TP + FN)                 recall, true-positive rate
specificity    TN / (TN + FP)                 true-negative rate
precision      TP / (TP + FP)                 positive predictive value
=============  =============================  ==========================

A ratio is undefined (0 / 0) when its denominator is empty: Dice and IoU when neither truth nor
prediction has foreground, sensitivity when the truth has none, precision when the prediction
has none, specificity when the truth is all foreground. The ``empty`` policy says what such a
ratio becomes:

- ``"nan"`` (default): NaN, which the summaries leave out of the mean and count as dropped, as
  the SSInfNet evaluation drops NaNs (most slices show no infection, and a perfect score on an
  empty slice says nothing about the model);
- ``"one"``: 1.0, the score of a prediction that agrees with an empty truth;
- ``"zero"``: 0.0, scikit-learn's ``zero_division=0``.

A defined ratio is never changed by the policy (an empty truth with a non-empty prediction has
Dice 0 under every policy).

Example:

>>> truth = np.array([[0, 1, 1], [0, 1, 1]])
>>> pred = np.array([[0.9, 0.8, 0.2], [0.1, 0.6, 0.7]])
>>> confusion_counts(truth, pred)
Confusion(tp=3, fp=1, fn=1, tn=1)
>>> {name: round(float(value), 4) for name, value in binary_overlap(truth, pred).items()}
{'dice': 0.75, 'iou': 0.6, 'sensitivity': 0.75, 'specificity': 0.5, 'precision': 0.75}
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

METRIC_NAMES = ("dice", "iou", "sensitivity", "specificity", "precision")
EMPTY_POLICIES = {"nan": np.nan, "one": 1.0, "zero": 0.0}


class Confusion(NamedTuple):
    """Confusion counts, each an int or an int64 array (one entry per class or threshold).

    Attributes:
        tp: true positives, foreground in both truth and prediction.
        fp: false positives, foreground in the prediction only.
        fn: false negatives, foreground in the truth only.
        tn: true negatives, background in both.
    """

    tp: int | np.ndarray
    fp: int | np.ndarray
    fn: int | np.ndarray
    tn: int | np.ndarray


def empty_fill(empty: str) -> float:
    """The value an undefined (0 / 0) ratio takes under the policy ``empty``.

    Raises:
        ValueError: ``empty`` is not "nan", "one" or "zero".
    """
    if empty not in EMPTY_POLICIES:
        raise ValueError(f"empty must be one of {sorted(EMPTY_POLICIES)}. "
                         f"Received: empty={empty!r}")
    return EMPTY_POLICIES[empty]


def binarize_truth(truth: np.ndarray) -> np.ndarray:
    """A ground-truth mask as bool: bool as given, 0/1 values as given, else grey levels > 128.

    The last rule is the Inf-Net toolbox's for 8-bit PNG masks (0 background, 255 foreground).

    Args:
        truth: array of any shape: bool, values in {0, 1}, or grey levels 0...255.

    Returns:
        bool array of the same shape.

    Raises:
        ValueError: ``truth`` holds values strictly between 0 and 1 (a soft mask is ambiguous).
    """
    truth = np.asarray(truth)
    if truth.dtype == bool:
        return truth
    if np.all((truth == 0) | (truth == 1)):
        return truth == 1
    soft = (truth > 0) & (truth < 1)
    if np.any(soft):
        raise ValueError(f"truth must be a mask (bool or 0/1) or grey levels 0...255, not soft "
                         f"values. Received: {truth[soft].ravel()[0].item()} among its values")
    return truth > 128


def binarize_prediction(pred: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """A prediction as bool: bool as given, anything else ``pred >= threshold``.

    Args:
        pred: array of any shape: bool, 0/1 values, or probabilities in [0, 1].
        threshold: float. Foreground where ``pred >= threshold``. Defaults to 0.5.

    Returns:
        bool array of the same shape.
    """
    pred = np.asarray(pred)
    return pred if pred.dtype == bool else pred >= threshold


def confusion_counts(truth: np.ndarray, pred: np.ndarray, threshold: float = 0.5) -> Confusion:
    """Confusion counts of one binary image (or volume): every pixel counts once.

    Args:
        truth: array (height, width) or any shape; see `binarize_truth`.
        pred: array of the same shape; see `binarize_prediction`.
        threshold: float. Foreground where ``pred >= threshold``. Defaults to 0.5.

    Returns:
        `Confusion` of Python ints.

    Raises:
        ValueError: the shapes differ.
    """
    truth, pred = np.asarray(truth), np.asarray(pred)
    if truth.shape != pred.shape:
        raise ValueError(f"truth and pred must have the same shape. Received: truth.shape="
                         f"{truth.shape}, pred.shape={pred.shape}")
    truth, pred = binarize_truth(truth), binarize_prediction(pred, threshold)
    tp = int(np.count_nonzero(truth & pred))
    positives, predicted = int(np.count_nonzero(truth)), int(np.count_nonzero(pred))
    fp, fn = predicted - tp, positives - tp
    return Confusion(tp, fp, fn, truth.size - tp - fp - fn)


def _ratio(numerator: np.ndarray, denominator: np.ndarray, fill: float) -> np.ndarray:
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, numerator / safe, fill)


def overlap_from_counts(counts: Confusion, empty: str = "nan") -> dict[str, np.ndarray]:
    """Dice, IoU, sensitivity, specificity and precision from confusion counts.

    Args:
        counts: `Confusion` of ints or of equally shaped int arrays (one entry per class or
            threshold); the ratios are taken entry by entry.
        empty: str. What an undefined 0 / 0 ratio becomes: "nan", "one" or "zero" (see the
            module docstring). Defaults to "nan".

    Returns:
        dict of metric name (`METRIC_NAMES`) to float64 array shaped like the counts.
    """
    fill = empty_fill(empty)
    tp, fp, fn, tn = (np.asarray(count, np.int64) for count in counts)
    return {"dice": _ratio(2 * tp, 2 * tp + fp + fn, fill),
            "iou": _ratio(tp, tp + fp + fn, fill),
            "sensitivity": _ratio(tp, tp + fn, fill),
            "specificity": _ratio(tn, tn + fp, fill),
            "precision": _ratio(tp, tp + fp, fill)}


def binary_overlap(truth: np.ndarray, pred: np.ndarray, threshold: float = 0.5,
                   empty: str = "nan") -> dict[str, float]:
    """Overlap metrics of one binary image.

    Args:
        truth: array (height, width), bool, 0/1 or grey levels (> 128 is foreground).
        pred: array (height, width), bool or probabilities in [0, 1].
        threshold: float. Foreground where ``pred >= threshold``. Defaults to 0.5.
        empty: str. Policy for undefined ratios: "nan", "one" or "zero". Defaults to "nan".

    Returns:
        dict of metric name (`METRIC_NAMES`) to float.
    """
    metrics = overlap_from_counts(confusion_counts(truth, pred, threshold), empty)
    return {name: float(value) for name, value in metrics.items()}


def labels_from_prediction(pred: np.ndarray) -> np.ndarray:
    """A multi-class prediction as a label map: integers as given, class scores by argmax.

    Args:
        pred: integer/bool label map (height, width), or float class scores
            (height, width, classes) (probabilities or logits; argmax over the last axis).

    Returns:
        integer array (height, width).
    """
    pred = np.asarray(pred)
    return np.argmax(pred, axis=-1) if np.issubdtype(pred.dtype, np.floating) else pred


def multiclass_confusion_counts(truth: np.ndarray, pred: np.ndarray,
                                num_classes: int = 3) -> Confusion:
    """Per-class confusion counts of one label map, each class against all others.

    Args:
        truth: integer label map (height, width): 0 background, 1 ground-glass opacity,
            2 consolidation.
        pred: integer label map of the same shape, or float class scores (height, width,
            num_classes) turned into labels by argmax.
        num_classes: int. Number of classes. Defaults to 3.

    Returns:
        `Confusion` of int64 arrays (num_classes,).

    Raises:
        ValueError: shapes differ, or a label lies outside 0...num_classes - 1.
    """
    truth, pred = np.asarray(truth), labels_from_prediction(pred)
    if truth.shape != pred.shape:
        raise ValueError(f"truth and pred label maps must have the same shape. Received: "
                         f"truth.shape={truth.shape}, pred.shape={pred.shape}")
    for name, labels in (("truth", truth), ("pred", pred)):
        outside = (labels < 0) | (labels >= num_classes)
        if np.any(outside):
            raise ValueError(f"{name} labels must lie in 0...{num_classes - 1}. Received: "
                             f"{np.unique(labels[outside]).tolist()} (num_classes={num_classes})")
    joint = np.bincount(truth.ravel().astype(np.int64) * num_classes + pred.ravel(),
                        minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    tp = np.diag(joint)
    fp, fn = joint.sum(axis=0) - tp, joint.sum(axis=1) - tp
    return Confusion(tp, fp, fn, truth.size - tp - fp - fn)


def multiclass_overlap(truth: np.ndarray, pred: np.ndarray, num_classes: int = 3,
                       empty: str = "nan") -> dict[str, np.ndarray]:
    """Per-class overlap metrics of one label map (one-hot of each class against the rest).

    Args:
        truth: integer label map (height, width): 0 background, 1 ground-glass opacity,
            2 consolidation.
        pred: integer label map, or float class scores (height, width, num_classes).
        num_classes: int. Defaults to 3.
        empty: str. Policy for undefined ratios: "nan", "one" or "zero". Defaults to "nan".

    Returns:
        dict of metric name (`METRIC_NAMES`) to float64 array (num_classes,).
    """
    return overlap_from_counts(multiclass_confusion_counts(truth, pred, num_classes), empty)
