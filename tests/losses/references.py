"""NumPy float64 references for the loss tests, written from the spec's formulas."""

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def naive_bce(target, probability):
    """Textbook binary cross-entropy (moderate probabilities only)."""
    return -(target * np.log(probability) + (1.0 - target) * np.log(1.0 - probability))


def box_mean_31(mask):
    """31 x 31 mean with zero padding 15 counted in the divisor, window by window."""
    padded = np.pad(mask, ((0, 0), (15, 15), (15, 15), (0, 0)))
    out = np.zeros(mask.shape)
    for row in range(mask.shape[1]):
        for col in range(mask.shape[2]):
            out[:, row, col] = padded[:, row:row + 31, col:col + 31].sum(axis=(1, 2)) / 961.0
    return out


def structure_loss(mask, logits, bce_weighting="weighted", pixel="bce"):
    """Per-image Inf-Net structure loss (spec 3.1), loops over images and channels."""
    weights = 1.0 + 5.0 * np.abs(box_mean_31(mask) - mask)
    probability = sigmoid(logits)
    elementwise = naive_bce(mask, probability)
    if pixel == "focal":
        elementwise = (1.0 - np.exp(-elementwise)) ** 2 * elementwise
    losses = np.zeros(mask.shape[0])
    for image in range(mask.shape[0]):
        per_channel = []
        for channel in range(mask.shape[3]):
            w, g = weights[image, ..., channel], mask[image, ..., channel]
            p, b = probability[image, ..., channel], elementwise[image, ..., channel]
            bce = (w * b).sum() / w.sum() if bce_weighting == "weighted" else b.mean()
            inter, union = (w * p * g).sum(), (w * (p + g)).sum()
            per_channel.append(bce + 1.0 - (inter + 1.0) / (union - inter + 1.0))
        losses[image] = np.mean(per_channel)
    return losses
