"""Inputs and targets of SSInfNet's pre-training (spec 7.2): crops, scaling, the data stream.

The reference pre-processes with constants of the overhead-imagery code it came from (not CT
statistics), in 0..255 grey-level units:

- network input ``x = 255 * image - MEAN`` (not divided by the standard deviation);
- reconstruction target ``y = clip((255 * image - MEAN) / (3 * STD), -1, 1)``, which the tanh
  heads can reach.

``image`` is the windowed CT in [0, 1] (three equal channels); the constants apply per channel
in the reference's BGR order. The multi-class model's prior is scaled the same way by default;
``prior_scaling="as_run"`` gives the reference's raw 0..255 prior as both input and target.

Training elements get, in this order, a random ``crop_size`` square, a horizontal flip with
p = 0.5 and a rotation by a multiple of 90 degrees, drawn from stateless seeds (the run seed,
the epoch and the element's position), so a resumed epoch sees the same crops. Validation
takes the centre square, unflipped. Image and prior are cropped together (the reference draws
the prior's crop independently, misaligning the two: spec 7.2). Deviation: slices are first
resized to ``data.image_size`` always (the reference resizes to 352 px with p = 0.5).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import tensorflow as tf

from tfcovid.data import pipeline

MEAN_BGR = (85.5518, 92.6692, 86.8148)
STD_BGR = (32.8860, 31.7342, 31.5361)
_GREY_LEVELS = 255.0


def network_input(image):
    """The inpainter's and coach's input: 255 * image - MEAN_BGR.

    Args:
        image: float tensor (batch, height, width, 3) in [0, 1].

    Returns:
        float32 tensor of the same shape, about -93..170.
    """
    return _GREY_LEVELS * tf.cast(image, tf.float32) - tf.constant(MEAN_BGR)


def reconstruction_target(image):
    """The reconstruction target: clip((255 * image - MEAN_BGR) / (3 STD_BGR), -1, 1).

    Args:
        image: float tensor (batch, height, width, 3) in [0, 1].

    Returns:
        float32 tensor of the same shape in [-1, 1].

    Example:

    >>> import numpy as np
    >>> np.round(reconstruction_target(np.full((1, 1, 1, 3), 0.5)).numpy().ravel(), 3)
    array([0.425, 0.366, 0.43 ], dtype=float32)
    """
    return tf.clip_by_value(network_input(image) / (3.0 * tf.constant(STD_BGR)), -1.0, 1.0)


def target_to_image(target):
    """A reconstruction (or target) back to the [0, 1] image it stands for, for display.

    Args:
        target: float tensor (batch, height, width, 3) in [-1, 1].

    Returns:
        float32 tensor of the same shape in [0, 1].
    """
    grey = tf.cast(target, tf.float32) * 3.0 * tf.constant(STD_BGR) + tf.constant(MEAN_BGR)
    return tf.clip_by_value(grey / _GREY_LEVELS, 0.0, 1.0)


def prior_input_and_target(prior, scaling: str) -> tuple[tf.Tensor, tf.Tensor]:
    """The multi-class model's prior as input and as reconstruction target.

    Args:
        prior: float tensor (batch, height, width, 3) in [0, 1].
        scaling: "image" (scaled as the CT image) or "as_run" (255 * prior for both).

    Returns:
        (input, target), float32 tensors of the shape of ``prior``.
    """
    if scaling == "as_run":
        raw = _GREY_LEVELS * tf.cast(prior, tf.float32)
        return raw, raw
    return network_input(prior), reconstruction_target(prior)


def augment(element: dict, seed, crop_size: int) -> dict:
    """A random ``crop_size`` square, a horizontal flip (p = 0.5) and a rotation by k * 90
    degrees of the element's "image" and "prior" (together).

    Args:
        element: dict with "image" (height, width, channels) and optionally "prior" of the
            same height and width.
        seed: int tensor (2,), the stateless seed.
        crop_size: int. Side in px of the crop.

    Returns:
        dict with "image" (and "prior") of shape (crop_size, crop_size, channels).
    """
    stacked, split = _stack(element)
    channels = stacked.shape[-1]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
    stacked = tf.image.stateless_random_crop(stacked, (crop_size, crop_size, channels), seeds[0])
    stacked = tf.image.stateless_random_flip_left_right(stacked, seeds[1])
    turns = tf.random.stateless_uniform((), seeds[2], 0, 4, dtype=tf.int32)
    return split(tf.image.rot90(stacked, turns))


def centre_crop(element: dict, crop_size: int) -> dict:
    """The centre ``crop_size`` square of "image" (and "prior"), for validation."""
    stacked, split = _stack(element)
    height, width = tf.shape(stacked)[0], tf.shape(stacked)[1]
    top, left = (height - crop_size) // 2, (width - crop_size) // 2
    return split(stacked[top:top + crop_size, left:left + crop_size])


def _stack(element: dict):
    keys = [key for key in ("image", "prior") if key in element]
    sizes = [element[key].shape[-1] for key in keys]

    def split(stacked):
        return dict(zip(keys, tf.split(stacked, sizes, axis=-1)))

    return tf.concat([tf.cast(element[key], tf.float32) for key in keys], axis=-1), split


def pretraining_dataset(data: pipeline.DataConfig, case_ids: Sequence[str], *, labelled: bool,
                        training: bool, epoch: int, crop_size: int, seed: int,
                        batch_size: int) -> tf.data.Dataset:
    """Batches of crops of the cases' slices for one epoch.

    Args:
        data: the pipeline settings; the images must come out in [0, 1] ("unit"
            normalisation) with 3 channels; ``include_prior`` adds the pipeline's prior.
        case_ids: cases to read.
        labelled: bool. Read labelled cases only (needed for a ground-truth prior); else every
            slice of the cases.
        training: bool. Shuffle and augment (else centre crops in store order).
        epoch: int >= 1. Epoch of the schedule, seeding the shuffle and the crops.
        crop_size: int. Side in px of the crops; at most ``data.image_size``.
        seed: int. The run seed.
        batch_size: int. Images per batch; training drops the last partial batch.

    Returns:
        tf.data.Dataset of dicts with "image" (batch, crop_size, crop_size, 3) in [0, 1] and
        "prior" when the pipeline gives one.

    Raises:
        ValueError: the images are not 3-channel "unit" images, or smaller than the crop.
    """
    if data.normalisation != "unit" or data.channels != 3:
        raise ValueError("pre-training reads 3-channel images in [0, 1]. Received: "
                         f"normalisation={data.normalisation!r}, channels={data.channels}")
    if data.image_size is None or min(data.image_size) < crop_size:
        raise ValueError(f"crop_size must fit data.image_size. Received: crop_size={crop_size}, "
                         f"image_size={data.image_size}")
    data = dataclasses.replace(data, include_edge=False, augmentation=None, seed=seed)
    read = pipeline.labelled_dataset if labelled else pipeline.unlabelled_dataset
    dataset = read(data, list(case_ids), training=training, epochs=1, first_epoch=epoch - 1,
                   batch=False)
    keys = ("image", "prior") if data.include_prior else ("image",)
    dataset = dataset.map(lambda element: {key: element[key] for key in keys})
    if training:
        dataset = dataset.enumerate().map(
            lambda position, element: augment(
                element, tf.stack([tf.constant(seed * 1_000_003 + epoch, tf.int64), position]),
                crop_size), num_parallel_calls=tf.data.AUTOTUNE)
    else:
        dataset = dataset.map(lambda element: centre_crop(element, crop_size))
    return dataset.batch(batch_size, drop_remainder=training).prefetch(tf.data.AUTOTUNE)
