"""Multi-class segmentation losses over one-hot targets (spec sections 5.5 and 5.7).

- `multiclass_bce`: the reference's criterion, a sigmoid per channel then PyTorch's ``BCELoss``
  over the one-hot target (each log clamped at -100), averaged over pixels and channels; no
  softmax, no class weights. From logits it uses the stable form, which differs from
  sigmoid-then-clamped-log only where a sigmoid saturates in float32 (|logit| > ~17).
- `softmax_cross_entropy`: categorical cross-entropy over the channel axis, the usual
  alternative for mutually exclusive classes (background, ground-glass opacity,
  consolidation).

Example:

>>> import numpy as np
>>> one_hot = np.eye(3, dtype="float32")[np.array([[[0, 1], [2, 0]]])]  # (1, 2, 2, 3)
>>> round(float(multiclass_bce(one_hot, np.zeros_like(one_hot), from_logits=True)[0]), 4)
0.6931
>>> round(float(softmax_cross_entropy(one_hot, np.zeros_like(one_hot))[0]), 4)  # log 3
1.0986
"""

from __future__ import annotations

import keras
from keras import ops

from tfcovid.losses.bce import binary_crossentropy


def _check_rank(y_pred):
    if len(y_pred.shape) != 4:
        raise ValueError(f"y_pred must be (batch, height, width, classes). "
                         f"Received: y_pred.shape={y_pred.shape}")


def multiclass_bce(y_true, y_pred, from_logits: bool = False):
    """Binary cross-entropy per channel against a one-hot target, mean per image.

    Args:
        y_true: tensor (batch, height, width, classes), one-hot (or smoothed) targets in
            [0, 1].
        y_pred: tensor of the same shape: logits if ``from_logits``, else sigmoid
            probabilities in [0, 1] (the reference).
        from_logits: bool. Whether ``y_pred`` holds logits. Defaults to False.

    Returns:
        tensor (batch,): the mean over height, width and classes.

    Raises:
        ValueError: ``y_pred`` not of rank 4.
    """
    y_pred = ops.convert_to_tensor(y_pred)
    _check_rank(y_pred)
    return ops.mean(binary_crossentropy(y_true, y_pred, from_logits), axis=(1, 2, 3))


def softmax_cross_entropy(y_true, y_pred, from_logits: bool = True):
    """Categorical cross-entropy over the class axis, mean over pixels per image.

    Args:
        y_true: tensor (batch, height, width, classes), one-hot (or smoothed) targets.
        y_pred: tensor of the same shape: logits if ``from_logits``, else softmax
            probabilities.
        from_logits: bool. Whether ``y_pred`` holds logits. Defaults to True.

    Returns:
        tensor (batch,).

    Raises:
        ValueError: ``y_pred`` not of rank 4.
    """
    y_pred = ops.cast(y_pred, "float32")
    _check_rank(y_pred)
    y_true = ops.cast(y_true, "float32")
    if from_logits:
        log_probabilities = ops.log_softmax(y_pred, axis=-1)
    else:
        log_probabilities = ops.log(ops.clip(y_pred, keras.config.epsilon(), 1.0))
    return ops.mean(-ops.sum(y_true * log_probabilities, axis=-1), axis=(1, 2))


@keras.saving.register_keras_serializable(package="tfcovid")
class MultiClassBCE(keras.losses.Loss):
    """`multiclass_bce` as a Keras loss; the default reduction averages over images.

    Args:
        from_logits: bool. Whether predictions are logits. Defaults to False.
        name: str. Defaults to "multiclass_bce".
        **kwargs: `keras.losses.Loss` arguments (``reduction``, ``dtype``).
    """

    def __init__(self, from_logits: bool = False, name: str = "multiclass_bce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.from_logits = from_logits

    def call(self, y_true, y_pred):
        return multiclass_bce(y_true, y_pred, self.from_logits)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}


@keras.saving.register_keras_serializable(package="tfcovid")
class SoftmaxCrossEntropy(keras.losses.Loss):
    """`softmax_cross_entropy` as a Keras loss; the default reduction averages over images.

    Args:
        from_logits: bool. Whether predictions are logits. Defaults to True.
        name: str. Defaults to "softmax_cross_entropy".
        **kwargs: `keras.losses.Loss` arguments (``reduction``, ``dtype``).
    """

    def __init__(self, from_logits: bool = True, name: str = "softmax_cross_entropy",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.from_logits = from_logits

    def call(self, y_true, y_pred):
        return softmax_cross_entropy(y_true, y_pred, self.from_logits)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}
