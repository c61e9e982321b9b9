"""StichNet prediction: full-resolution class maps by tiling, and an uncertainty map.

Spec 9.1 (recommended, not in the reference code): slices are cut into ``patch_size`` tiles
every ``stride`` px (`tfcovid.data.patches.tile`, zero padding at the bottom and right), each
tile goes through the posterior-mean path in inference mode, and the per-class probabilities
are stitched back averaging overlaps (uniform window). Uncertainty (spec [P]): the per-pixel
entropy, in nats, of the mean class distribution over ``samples`` posterior draws of the
latents (inference-mode batch norm), also tiled and stitched.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfcovid.data import patches
from tfcovid.models.stichnet import decoders


def _tiled(function, images, patch_size: int, stride: int | None):
    if patch_size is None:
        return function(images)
    tiles, grid = patches.tile(images, patch_size, stride)
    return patches.stitch(function(tiles), grid)


def predict_probabilities(network: keras.Model, images, patch_size: int | None = 64,
                          stride: int | None = 32) -> tf.Tensor:
    """Class probabilities of the posterior-mean path, tiled and stitched.

    Args:
        network: a `tfcovid.models.stichnet.StichNet`.
        images: float (batch, height, width, 1) in [0, 1]; any height and width when tiled,
            multiples of 32 otherwise.
        patch_size: int or None. Tile side in px; None runs whole images. Defaults to 64.
        stride: int or None. Step between tiles in px. Defaults to 32 (half overlap).

    Returns:
        float32 (batch, height, width, 3): 0 background (or healthy lung), 1 GGO,
        2 consolidation.
    """
    return _tiled(lambda tiles: tf.nn.softmax(network(tiles, training=False)["logits"]),
                  images, patch_size, stride)


def predict_uncertainty(network: keras.Model, images, samples: int, patch_size: int | None = 64,
                        stride: int | None = 32) -> tf.Tensor:
    """Per-pixel entropy (nats) of the mean class distribution over latent samples.

    Args:
        network, images, patch_size, stride: as `predict_probabilities`.
        samples: int >= 1. Posterior draws.

    Returns:
        float32 (batch, height, width), in [0, log 3].

    Raises:
        ValueError: ``samples`` < 1.
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1. Received: samples={samples}")

    def mean_probabilities(tiles):
        draws = [tf.exp(decoders.store_class_log_probabilities(
            network.forward(tiles, mode="sample", training=False)["class_log_probs"]))
            for _ in range(samples)]
        return tf.add_n(draws) / float(samples)

    mean = _tiled(mean_probabilities, images, patch_size, stride)
    return -tf.reduce_sum(tf.math.multiply_no_nan(tf.math.log(mean), mean), axis=-1)


def batch_norm_layers(network: keras.Model) -> list:
    """Every `keras.layers.BatchNormalization` inside ``network``, nested ones included."""
    # Keras has no public recursive layer walk; _flatten_layers is what Model.summary uses.
    return [layer for layer in network._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, keras.layers.BatchNormalization)]


def recalibrate_batch_norm(network: keras.Model, batches, forward=None,
                           momentum: float = 0.7) -> int:
    """Re-estimates the moving batch-norm statistics on the posterior-mean path.

    Training normalises features of *sampled* latents, whose spread includes the posterior
    noise; at prediction the latents sit at their means, so the moving statistics of training
    shrink the decoders' features and the lung map collapses (measured on the phantom: no
    lesion pixel predicted in inference mode, 75 % of them in training mode). Running the
    mean path in training mode over training images, with ``momentum``, moves the statistics
    to those of the prediction path (a deviation from the reference, which predicts in
    training mode on a fixed batch of 3, spec 9.2).

    Args:
        network: a `tfcovid.models.stichnet.StichNet`.
        batches: iterable of float (batch, height, width, 1) image batches in [0, 1].
        forward: callable or None. ``forward(images)`` running ``network(images,
            training=True)``, e.g. a traced `tf.function`; None calls the network. Defaults
            to None.
        momentum: float in [0, 1). Batch-norm momentum while recalibrating. Defaults to 0.7.

    Returns:
        int. Batches run.
    """
    forward = forward or (lambda images: network(images, training=True))
    norms = batch_norm_layers(network)
    previous = [norm.momentum for norm in norms]
    count = 0
    try:
        for norm in norms:
            norm.momentum = momentum
        for images in batches:
            forward(images)
            count += 1
    finally:
        for norm, value in zip(norms, previous):
            norm.momentum = value
    return count
