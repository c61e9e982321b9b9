"""Inf-Net structure loss: weighted BCE plus weighted IoU (spec section 3.1, focal form 3.4).

With ``G`` the soft mask and ``P`` the logits, both (batch, height, width, channels):

- weight map ``W = 1 + 5 |A(G) - G|``, ``A`` a 31 x 31 box mean, stride 1, zero padding 15
  counted in the divisor (every window divides by 961): large near boundaries;
- ``bce_weighting="weighted"`` (default, the F3Net formula the paper describes): per image and
  channel ``sum(W bce) / sum(W)``; ``"as_run"``: the plain mean of ``bce`` over pixels. The
  reference passes PyTorch's legacy ``reduce="none"``, which resolves to a batch mean, so the
  published models were trained with the unweighted BCE (spec 3.1 item 2, quirk 2);
- ``pixel_loss="focal"`` replaces ``bce`` by the focal term with alpha 1, gamma 2 (3.4);
- weighted IoU ``1 - (inter + 1) / (union - inter + 1)`` with ``inter = sum(W p G)``,
  ``union = sum(W (p + G))``, ``p = sigmoid(P)``: `tfcovid.metrics.tensor.iou_score` with
  ``weights=W`` and ``smooth=1``.

The per-image loss is the mean over channels of the BCE and IoU terms; its mean over images is
the reference's scalar in both weightings (images of one batch share their pixel count).

Example:

>>> import numpy as np
>>> mask = np.zeros((2, 40, 48, 1), "float32"); mask[:, 10:30, 12:36] = 1
>>> confident = np.where(mask > 0, 20.0, -20.0).astype("float32")  # right everywhere
>>> [round(float(v), 4) for v in structure_loss(mask, confident)]
[0.0, 0.0]
>>> round(float(weight_map(mask)[0, 0, 0, 0]), 4)  # 1 + 5 * (6 x 4 px in the window) / 961
1.1249
"""

from __future__ import annotations

import keras
from keras import ops

from tfcovid.losses.bce import binary_crossentropy
from tfcovid.losses.focal import focal_elementwise
from tfcovid.metrics import tensor

POOL_SIZE_PX = 31  # A(G): 31 x 31 box, zero padding 15 counted in the mean
BOUNDARY_GAIN = 5.0
BCE_WEIGHTINGS = ("weighted", "as_run")
PIXEL_LOSSES = ("bce", "focal")
FOCAL_ALPHA, FOCAL_GAMMA = 1.0, 2.0  # SSInfNet's --focal_loss


def weight_map(mask):
    """Boundary weight ``1 + 5 |A(G) - G|`` of a soft mask.

    ``A`` is the 31 x 31 mean with zero padding counted in the divisor, computed as two
    separable 1-D means over an explicitly zero-padded mask (equal to PyTorch's
    ``avg_pool2d(G, 31, 1, 15)``, ``count_include_pad=True``).

    Args:
        mask: tensor (batch, height, width, channels), values in [0, 1].

    Returns:
        float32 tensor of the same shape, values in [1, 6].
    """
    mask = ops.cast(mask, "float32")
    half = POOL_SIZE_PX // 2
    padded = ops.pad(mask, [[0, 0], [half, half], [half, half], [0, 0]])
    rows = ops.average_pool(padded, pool_size=(POOL_SIZE_PX, 1), strides=1, padding="valid")
    local_mean = ops.average_pool(rows, pool_size=(1, POOL_SIZE_PX), strides=1, padding="valid")
    return 1.0 + BOUNDARY_GAIN * ops.abs(local_mean - mask)


def _check(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}. Received: {name}={value!r}")


def structure_loss(mask, logits, bce_weighting: str = "weighted", pixel_loss: str = "bce"):
    """Structure loss per image (spec 3.1): boundary-weighted BCE plus weighted IoU.

    Args:
        mask: tensor (batch, height, width, channels), ground truth in [0, 1] (soft, as a
            bilinearly resized mask).
        logits: tensor of the same shape, logits.
        bce_weighting: str. "weighted" (``sum(W bce) / sum(W)``) or "as_run" (plain mean, as
            the published models were trained). Defaults to "weighted".
        pixel_loss: str. "bce" or "focal" (alpha 1, gamma 2; SSInfNet's ``--focal_loss``).
            Defaults to "bce".

    Returns:
        float32 tensor (batch,): per image, the mean over channels of BCE term + IoU term.

    Raises:
        ValueError: an unknown ``bce_weighting`` or ``pixel_loss``, or inputs not of rank 4.
    """
    _check("bce_weighting", bce_weighting, BCE_WEIGHTINGS)
    _check("pixel_loss", pixel_loss, PIXEL_LOSSES)
    logits = ops.cast(logits, "float32")
    if len(logits.shape) != 4:
        raise ValueError(f"logits must be (batch, height, width, channels). "
                         f"Received: logits.shape={logits.shape}")
    mask = ops.cast(mask, "float32")
    weights = weight_map(mask)
    if pixel_loss == "bce":
        pixel = binary_crossentropy(mask, logits, from_logits=True)
    else:
        pixel = focal_elementwise(mask, logits, FOCAL_ALPHA, FOCAL_GAMMA, from_logits=True)
    if bce_weighting == "weighted":
        bce_term = ops.sum(weights * pixel, axis=(1, 2)) / ops.sum(weights, axis=(1, 2))
    else:
        bce_term = ops.mean(pixel, axis=(1, 2))
    iou = tensor.iou_score(mask, ops.sigmoid(logits), axis=(1, 2), weights=weights, smooth=1.0)
    return ops.mean(bce_term + 1.0 - iou, axis=-1)


@keras.saving.register_keras_serializable(package="tfcovid")
class StructureLoss(keras.losses.Loss):
    """`structure_loss` as a Keras loss (``y_true`` the mask, ``y_pred`` the logits).

    Args:
        bce_weighting: str. "weighted" or "as_run". Defaults to "weighted".
        pixel_loss: str. "bce" or "focal". Defaults to "bce".
        name: str. Defaults to "structure".
        **kwargs: `keras.losses.Loss` arguments (``reduction``, ``dtype``).
    """

    def __init__(self, bce_weighting: str = "weighted", pixel_loss: str = "bce",
                 name: str = "structure", **kwargs):
        super().__init__(name=name, **kwargs)
        _check("bce_weighting", bce_weighting, BCE_WEIGHTINGS)
        _check("pixel_loss", pixel_loss, PIXEL_LOSSES)
        self.bce_weighting, self.pixel_loss = bce_weighting, pixel_loss

    def call(self, y_true, y_pred):
        return structure_loss(y_true, y_pred, self.bce_weighting, self.pixel_loss)

    def get_config(self):
        return {**super().get_config(), "bce_weighting": self.bce_weighting,
                "pixel_loss": self.pixel_loss}
