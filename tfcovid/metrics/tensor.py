"""Soft Dice and IoU on tensors with ``keras.ops``: the one formula losses and metrics share.

On hard (0/1) masks these are the Dice and IoU of `tfcovid.metrics.overlap`; on probabilities
they are the soft versions used by losses (``1 - dice_score`` is the Dice loss). The empty-mask
policy is `overlap`'s: a ratio whose denominator is 0 becomes NaN ("nan"), 1 ("one") or 0
("zero"); ``smooth > 0`` adds the same constant to numerator and denominator, so nothing is
undefined (as Inf-Net's weighted IoU, which adds 1).

Example:

>>> import numpy as np
>>> truth = np.zeros((1, 4, 5, 1), "float32"); truth[0, 1:3, 1:3] = 1
>>> pred = np.zeros_like(truth); pred[0, 1, 2:4] = 1; pred[0, 2, 2] = 1
>>> round(float(dice_score(truth, pred)), 4), round(float(iou_score(truth, pred)), 4)
(0.5714, 0.4)
"""

from __future__ import annotations

from keras import ops

from tfcovid.metrics import overlap


def _sums(y_true, y_pred, axis, weights):
    y_true, y_pred = ops.cast(y_true, "float32"), ops.cast(y_pred, "float32")
    weights = 1.0 if weights is None else ops.cast(weights, "float32")
    intersection = ops.sum(weights * y_true * y_pred, axis=axis)
    total = ops.sum(weights * (y_true + y_pred), axis=axis)
    return intersection, total


def _ratio(numerator, denominator, smooth, empty):
    fill = overlap.empty_fill(empty)
    numerator, denominator = numerator + smooth, denominator + smooth
    defined = denominator > 0
    safe = ops.where(defined, denominator, ops.ones_like(denominator))  # no NaN in gradients
    return ops.where(defined, numerator / safe, ops.full_like(denominator, fill))


def dice_score(y_true, y_pred, axis=None, weights=None, smooth: float = 0.0, empty: str = "nan"):
    """Soft Dice ``(2 sum(w t p) + smooth) / (sum(w (t + p)) + smooth)`` over ``axis``.

    Args:
        y_true: tensor (batch, height, width, channels), masks in [0, 1] (one-hot per class).
        y_pred: tensor of the same shape, probabilities in [0, 1].
        axis: int, tuple of ints or None. Axes summed over: None for all (one number for the
            whole batch), (1, 2) for one value per image and channel. Defaults to None.
        weights: tensor broadcastable to ``y_true`` or None. Pixel weights (for example
            boundary weights). Defaults to None (all 1).
        smooth: float. Added to numerator and denominator. Defaults to 0.0.
        empty: str. Value where the denominator is 0: "nan", "one" or "zero". Defaults to
            "nan".

    Returns:
        float32 tensor of the input shape without ``axis``.
    """
    intersection, total = _sums(y_true, y_pred, axis, weights)
    return _ratio(2.0 * intersection, total, smooth, empty)


def iou_score(y_true, y_pred, axis=None, weights=None, smooth: float = 0.0, empty: str = "nan"):
    """Soft IoU ``(sum(w t p) + smooth) / (sum(w (t + p - t p)) + smooth)`` over ``axis``.

    Args:
        y_true: tensor (batch, height, width, channels), masks in [0, 1] (one-hot per class).
        y_pred: tensor of the same shape, probabilities in [0, 1].
        axis: int, tuple of ints or None. Axes summed over: None for all, (1, 2) for one value
            per image and channel. Defaults to None.
        weights: tensor broadcastable to ``y_true`` or None. Pixel weights. Defaults to None.
        smooth: float. Added to numerator and denominator. Defaults to 0.0.
        empty: str. Value where the denominator is 0: "nan", "one" or "zero". Defaults to
            "nan".

    Returns:
        float32 tensor of the input shape without ``axis``.
    """
    intersection, total = _sums(y_true, y_pred, axis, weights)
    return _ratio(intersection, total - intersection, smooth, empty)
