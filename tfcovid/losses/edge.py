"""Inf-Net edge loss: plain binary cross-entropy with logits (spec section 3.2).

The edge ground truth is soft (a bilinearly resized edge map in [0, 1]) and no weighting is
applied: the mean over all elements, as PyTorch's ``BCEWithLogitsLoss``.

Example:

>>> import numpy as np
>>> edge = np.zeros((2, 32, 40, 1), "float32"); edge[:, 8, 4:36] = 1
>>> [round(float(v), 4) for v in edge_loss(edge, np.zeros_like(edge))]  # log 2 everywhere
[0.6931, 0.6931]
"""

from __future__ import annotations

import keras
from keras import ops

from tfcovid.losses.bce import binary_crossentropy


def edge_loss(edge, logits):
    """Mean binary cross-entropy with logits per image.

    The mean over images of the result is the reference's scalar.

    Args:
        edge: tensor (batch, height, width, 1), edge ground truth in [0, 1].
        logits: tensor of the same shape, edge logits.

    Returns:
        tensor (batch,).
    """
    values = binary_crossentropy(edge, logits, from_logits=True)
    return ops.mean(values, axis=tuple(range(1, len(values.shape))))


@keras.saving.register_keras_serializable(package="tfcovid")
class EdgeLoss(keras.losses.Loss):
    """`edge_loss` as a Keras loss (``y_true`` the edge map, ``y_pred`` the edge logits).

    Args:
        name: str. Defaults to "edge".
        **kwargs: `keras.losses.Loss` arguments (``reduction``, ``dtype``).
    """

    def __init__(self, name: str = "edge", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return edge_loss(y_true, y_pred)
