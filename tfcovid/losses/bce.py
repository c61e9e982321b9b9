"""Element-wise binary cross-entropy in PyTorch's two forms (spec sections 3.1, 3.2, 3.5, 5.5).

From logits it is ``BCEWithLogitsLoss``'s stable ``max(x, 0) - x y + log(1 + exp(-|x|))``; from
probabilities it is ``BCELoss``'s ``-(y log p + (1 - y) log(1 - p))`` with each log clamped at
-100, so one element never costs more than 100. Every loss in this package that needs a
binary cross-entropy takes it from here.

Example:

>>> import numpy as np
>>> [round(float(v), 4) for v in binary_crossentropy(np.array([1.0, 0.0]), np.array([0.0, 0.0]),
...                                                    from_logits=True)]
[0.6931, 0.6931]
>>> [float(v) for v in binary_crossentropy(np.array([1.0, 0.0]), np.array([0.0, 1.0]))]
[100.0, 100.0]
"""

from __future__ import annotations

import keras
from keras import ops

LOG_CLAMP = -100.0  # PyTorch BCELoss: log(.) >= -100


def clamped_log(x):
    """``max(log x, -100)`` with finite gradients where ``x`` is 0 (PyTorch ``BCELoss``)."""
    positive = x > 0
    safe = ops.where(positive, x, ops.ones_like(x))  # log(0) would put NaN in the gradient
    return ops.maximum(ops.where(positive, ops.log(safe), LOG_CLAMP), LOG_CLAMP)


def binary_crossentropy(y_true, y_pred, from_logits: bool = False):
    """Binary cross-entropy of every element, no reduction.

    Args:
        y_true: tensor, targets in [0, 1] (soft targets allowed).
        y_pred: tensor of the same shape: logits if ``from_logits``, else probabilities in
            [0, 1].
        from_logits: bool. Whether ``y_pred`` holds logits. Defaults to False.

    Returns:
        tensor of the input shape and ``y_pred``'s float dtype, each element >= 0.
    """
    y_pred = ops.convert_to_tensor(y_pred)
    if not keras.backend.is_float_dtype(y_pred.dtype):
        y_pred = ops.cast(y_pred, "float32")
    y_true = ops.cast(y_true, y_pred.dtype)
    if from_logits:
        return ops.relu(y_pred) - y_pred * y_true + ops.log1p(ops.exp(-ops.abs(y_pred)))
    return -(y_true * clamped_log(y_pred) + (1.0 - y_true) * clamped_log(1.0 - y_pred))
