"""Binary focal loss as SSInfNet's ``focal_loss.py`` (spec sections 3.4 and 8.1).

Per element ``f = alpha (1 - p_t)^gamma b``, where ``b`` is the binary cross-entropy and
``p_t = exp(-b)``; the reference uses ``alpha = 1`` (no class balancing, although the SSInfNet
draft describes a positive/negative balance) and ``gamma = 2``. From probabilities, ``b`` is
PyTorch's ``BCELoss`` with the log clamped at -100 (the multi-class model); from logits it is
the stable form (the single model, inside the structure loss). With ``gamma = 0`` the focal loss
is ``alpha`` times the binary cross-entropy.

Example:

>>> import numpy as np
>>> y_true = np.array([[1.0, 0.0]]); y_pred = np.array([[0.5, 0.5]])
>>> round(float(focal_loss(y_true, y_pred)[0]), 4)  # (1 - 0.5)^2 * log 2
0.1733
>>> round(float(FocalLoss(gamma=0.0)(y_true, y_pred)), 4)  # log 2
0.6931
"""

from __future__ import annotations

import keras
from keras import ops

from tfcovid.losses.bce import binary_crossentropy


def focal_elementwise(y_true, y_pred, alpha: float = 1.0, gamma: float = 2.0,
                      from_logits: bool = False):
    """Focal loss of every element, no reduction (the structure loss weights these per pixel).

    Args:
        y_true: tensor, targets in [0, 1].
        y_pred: tensor of the same shape: logits if ``from_logits``, else probabilities in
            [0, 1].
        alpha: float. Overall scale (the reference's alpha; not a class balance). Defaults to
            1.0.
        gamma: float >= 0. Focusing exponent. Defaults to 2.0.
        from_logits: bool. Whether ``y_pred`` holds logits. Defaults to False.

    Returns:
        tensor of the input shape, each element >= 0.
    """
    bce = binary_crossentropy(y_true, y_pred, from_logits=from_logits)
    p_t = ops.exp(-bce)
    return alpha * ops.power(1.0 - p_t, gamma) * bce


def focal_loss(y_true, y_pred, alpha: float = 1.0, gamma: float = 2.0, from_logits: bool = False):
    """Focal loss per image: the mean over all non-batch elements.

    The mean over images of the result is the reference's scalar (mean over all elements).

    Args:
        y_true: tensor (batch, height, width, channels), targets in [0, 1].
        y_pred: tensor of the same shape: logits if ``from_logits``, else probabilities in
            [0, 1].
        alpha: float. Overall scale. Defaults to 1.0.
        gamma: float >= 0. Focusing exponent. Defaults to 2.0.
        from_logits: bool. Whether ``y_pred`` holds logits. Defaults to False (the reference
            class's default; the single Inf-Net passes logits).

    Returns:
        tensor (batch,).

    Raises:
        ValueError: ``gamma`` is negative.
    """
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0. Received: gamma={gamma}")
    values = focal_elementwise(y_true, y_pred, alpha, gamma, from_logits)
    return ops.mean(values, axis=tuple(range(1, len(values.shape))))


@keras.saving.register_keras_serializable(package="tfcovid")
class FocalLoss(keras.losses.Loss):
    """`focal_loss` as a Keras loss; the default reduction averages over images.

    Args:
        alpha: float. Overall scale. Defaults to 1.0.
        gamma: float >= 0. Focusing exponent. Defaults to 2.0.
        from_logits: bool. Whether predictions are logits. Defaults to False.
        name: str. Defaults to "focal".
        **kwargs: `keras.losses.Loss` arguments (``reduction``, ``dtype``).
    """

    def __init__(self, alpha: float = 1.0, gamma: float = 2.0, from_logits: bool = False,
                 name: str = "focal", **kwargs):
        super().__init__(name=name, **kwargs)
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0. Received: gamma={gamma}")
        self.alpha, self.gamma, self.from_logits = alpha, gamma, from_logits

    def call(self, y_true, y_pred):
        return focal_loss(y_true, y_pred, self.alpha, self.gamma, self.from_logits)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "gamma": self.gamma,
                "from_logits": self.from_logits}
