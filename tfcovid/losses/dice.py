"""Soft Dice loss: ``1 - Dice`` over the spatial axes, per image and channel.

The Dice is `tfcovid.metrics.tensor.dice_score`, the formula the metrics use, on probabilities:
``(2 sum(t p) + smooth) / (sum(t + p) + smooth)`` over height and width. On hard (0/1) masks
the loss is exactly ``1 - Dice`` (the identity in MONAI's ``DiceMetric`` docstring). An image
whose truth and prediction are both empty scores ``empty`` ("one" by default, a loss of 0,
since the prediction agrees with the truth; "nan" would poison the batch mean).

Example:

>>> import numpy as np
>>> truth = np.zeros((1, 4, 5, 1), "float32"); truth[0, 1:3, 1:3] = 1
>>> pred = np.zeros_like(truth); pred[0, 1, 2:4] = 1; pred[0, 2, 2] = 1
>>> round(float(dice_loss(truth, pred)[0]), 4)  # 1 - 2*2 / (4 + 3) = 3/7
0.4286
"""

from __future__ import annotations

import keras
from keras import ops

from tfcovid.metrics import overlap, tensor


def dice_loss(y_true, y_pred, from_logits: bool = False, smooth: float = 0.0,
              empty: str = "one"):
    """Soft Dice loss per image: the mean over channels of ``1 - Dice`` over height and width.

    Args:
        y_true: tensor (batch, height, width, channels), masks in [0, 1] (one-hot per class).
        y_pred: tensor of the same shape: logits if ``from_logits`` (a sigmoid is applied),
            else probabilities in [0, 1].
        from_logits: bool. Whether ``y_pred`` holds logits. Defaults to False.
        smooth: float >= 0. Added to the Dice numerator and denominator. Defaults to 0.0.
        empty: str. Dice of an image and channel whose truth and prediction are both empty:
            "one", "zero" or "nan". Defaults to "one".

    Returns:
        float32 tensor (batch,), values in [0, 1].

    Raises:
        ValueError: inputs not of rank 4, or an unknown ``empty``.
    """
    y_pred = ops.convert_to_tensor(y_pred)
    if len(y_pred.shape) != 4:
        raise ValueError(f"y_pred must be (batch, height, width, channels). "
                         f"Received: y_pred.shape={y_pred.shape}")
    probabilities = ops.sigmoid(ops.cast(y_pred, "float32")) if from_logits else y_pred
    dice = tensor.dice_score(y_true, probabilities, axis=(1, 2), smooth=smooth, empty=empty)
    return ops.mean(1.0 - dice, axis=-1)


@keras.saving.register_keras_serializable(package="tfcovid")
class DiceLoss(keras.losses.Loss):
    """`dice_loss` as a Keras loss; the default reduction averages over images.

    Args:
        from_logits: bool. Whether predictions are logits. Defaults to False.
        smooth: float >= 0. Added to numerator and denominator. Defaults to 0.0.
        empty: str. Dice of an empty truth and prediction: "one", "zero" or "nan". Defaults
            to "one".
        name: str. Defaults to "dice".
        **kwargs: `keras.losses.Loss` arguments (``reduction``, ``dtype``).
    """

    def __init__(self, from_logits: bool = False, smooth: float = 0.0, empty: str = "one",
                 name: str = "dice", **kwargs):
        super().__init__(name=name, **kwargs)
        overlap.empty_fill(empty)  # rejects an unknown policy now rather than at the first call
        self.from_logits, self.smooth, self.empty = from_logits, smooth, empty

    def call(self, y_true, y_pred):
        return dice_loss(y_true, y_pred, self.from_logits, self.smooth, self.empty)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits, "smooth": self.smooth,
                "empty": self.empty}
