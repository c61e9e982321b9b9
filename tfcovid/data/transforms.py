"""Intensity, geometry and target transforms for CT slices: NumPy functions and their TF twins.

Each transform is a pure function of one array; keyed wrappers (``*_element``) apply the right
one to every key of an element dict, so the image and its masks never travel apart (MONAI's
array/dictionary pairs). The NumPy functions serve reports and tests; the TensorFlow ones run
inside ``tf.data`` maps (``tfcovid.data.pipeline``) and are tested against the NumPy ones.

Conventions (reference spec sections 4.2, 4.5, 5.3 and 15):

- Intensities. ``"hu"`` stores hold Hounsfield units and are windowed here; the lung window
  (level -600 HU, width 1500 HU, i.e. [-1350, 150] HU) maps linearly onto [0, 1] and clips.
  ``"windowed8"`` stores were windowed by their publisher; their grey levels are divided by 255.
- Resizing uses half-pixel centres (PyTorch ``align_corners=False``), no antialiasing, to the
  exact target size: bilinear for images and soft maps (edges, priors), nearest neighbour for
  label maps so that only label values appear. The single-class reference loader resizes with
  PIL, which widens its bilinear filter when shrinking; that antialiasing is not reproduced.
- Model input. One channel, or three equal channels for ImageNet backbones; ``"unit"`` keeps
  [0, 1], ``"imagenet"`` subtracts the ImageNet mean and divides by its standard deviation
  (the references normalise both the CT image and the multi-class prior this way).
"""

from __future__ import annotations

import cv2
import numpy as np
import tensorflow as tf

LUNG_WINDOW_LEVEL_HU = -600.0
LUNG_WINDOW_WIDTH_HU = 1500.0
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NORMALISATIONS = ("unit", "imagenet")
CANNY_THRESHOLDS = (10, 150)
EDGE_METHODS = ("canny", "gradient")

SOFT_KEYS = ("image", "edge", "prior")
"""Element keys resized and warped with bilinear interpolation."""
LABEL_KEYS = ("mask", "label", "lung")
"""Element keys resized and warped with nearest neighbour, so only their values appear."""


def _check_window(width_hu: float) -> None:
    if not width_hu > 0:
        raise ValueError(f"The window width must be positive. Received: width_hu={width_hu}")


def window_hu(image_hu: np.ndarray, level_hu: float = LUNG_WINDOW_LEVEL_HU,
              width_hu: float = LUNG_WINDOW_WIDTH_HU) -> np.ndarray:
    """Maps Hounsfield units linearly onto [0, 1] inside a window, clipping outside it.

    ``(x - (level - width / 2)) / width``, clipped to [0, 1].

    Args:
        image_hu: array of any shape, Hounsfield units.
        level_hu: float. Window centre in HU. Defaults to -600 (lung window).
        width_hu: float. Window width in HU, positive. Defaults to 1500.

    Returns:
        float32 array of the same shape, in [0, 1].

    Example:

    >>> window_hu(np.array([-1350, -600, 150, 400]))
    array([0. , 0.5, 1. , 1. ], dtype=float32)
    """
    _check_window(width_hu)
    low_hu = level_hu - width_hu / 2
    unit = (np.asarray(image_hu, np.float64) - low_hu) / width_hu
    return np.clip(unit, 0.0, 1.0).astype(np.float32)


def scale_windowed8(image: np.ndarray) -> np.ndarray:
    """Scales uint8 grey levels of a pre-windowed image to [0, 1]: ``image / 255`` as float32."""
    return (np.asarray(image, np.float32) / 255.0).astype(np.float32)


def normalise_imagenet(image: np.ndarray) -> np.ndarray:
    """Subtracts the ImageNet mean and divides by its standard deviation, per channel.

    Args:
        image: array (..., 3) in [0, 1].

    Returns:
        float32 array of the same shape.

    Raises:
        ValueError: the last axis is not 3 channels.
    """
    image = np.asarray(image, np.float32)
    if image.shape[-1] != 3:
        raise ValueError(f"ImageNet normalisation needs 3 channels. Received: shape={image.shape}")
    return ((image - np.float32(IMAGENET_MEAN)) / np.float32(IMAGENET_STD)).astype(np.float32)


def edge_map(mask: np.ndarray, method: str = "canny") -> np.ndarray:
    """Boundary of the infection mask, as the Inf-Net data set's edge maps were made.

    ``"canny"`` (spec section 4.5, Inf-Net's ``binary2edge``): the binary mask, scaled to
    0/255, goes through OpenCV Canny with thresholds 10 and 150 (3 x 3 Sobel, L1 gradient).
    This gives a closed, one-pixel-wide 8-connected contour that straddles the boundary:
    non-maximum suppression keeps the first of the two equal responses across a step, so top
    and left sides lie just outside the region, bottom and right sides just inside it, and
    corners are cut diagonally (a 6 x 6 square gives 20 pixels). It reproduces the
    ``Pseudo-label/Edge`` maps shipped with COVID-SemiSeg pixel for pixel.

    ``"gradient"``: the morphological gradient with a 3 x 3 cross (dilation minus erosion,
    nothing eroded from the image border), a two-pixel band, one pixel on each side of the
    boundary (a 6 x 6 square gives its 20 border pixels plus the 24 touching its sides). The
    ``Doctor-label/Edge`` maps the official Inf-Net was trained on look like this, not like
    Canny: the band contains every one of their pixels and adds only about 0.25 % more (at
    one-pixel holes).

    Training resizes edge maps bilinearly, as the reference does.

    Args:
        mask: array (height, width). Non-zero marks infection (labels 1 and 2 alike).
        method: "canny" or "gradient". Defaults to "canny".

    Returns:
        float32 array (height, width) with values 0 and 1.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"edge_map takes one (height, width) mask. Received: shape={mask.shape}")
    if method == "canny":
        binary = np.where(mask > 0, 255, 0).astype(np.uint8)
        return (cv2.Canny(binary, *CANNY_THRESHOLDS) > 0).astype(np.float32)
    if method == "gradient":
        cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
        band = cv2.morphologyEx((mask > 0).astype(np.uint8), cv2.MORPH_GRADIENT, cross)
        return band.astype(np.float32)
    raise ValueError(f"method must be one of {EDGE_METHODS}. Received: method={method!r}")


def prior_from_label(label: np.ndarray | None, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Infection prior for multi-class models from ground truth: ``(label > 0)`` as float32.

    The multi-class references feed a single-class infection probability map beside the image
    (spec 5.3); SSInfNet trained with the binarised ground truth. Without a label the prior is
    all zeros (pass ``shape``).

    Args:
        label: array (height, width) of class ids 0/1/2, or None.
        shape: (height, width) of the zero prior when ``label`` is None.

    Returns:
        float32 array (height, width) in {0, 1}.
    """
    if label is None:
        if shape is None:
            raise ValueError("prior_from_label needs a label or a shape. Received: both None")
        return np.zeros(shape, np.float32)
    return (np.asarray(label) > 0).astype(np.float32)


# TensorFlow versions, for tf.data maps.


def window_hu_tf(image_hu: tf.Tensor, level_hu: float = LUNG_WINDOW_LEVEL_HU,
                 width_hu: float = LUNG_WINDOW_WIDTH_HU) -> tf.Tensor:
    """TensorFlow twin of ``window_hu``: HU of any shape to float32 in [0, 1]."""
    _check_window(width_hu)
    low_hu = level_hu - width_hu / 2
    unit = (tf.cast(image_hu, tf.float32) - np.float32(low_hu)) / np.float32(width_hu)
    return tf.clip_by_value(unit, 0.0, 1.0)


def scale_windowed8_tf(image: tf.Tensor) -> tf.Tensor:
    """TensorFlow twin of ``scale_windowed8``: uint8 grey levels to float32 ``image / 255``."""
    return tf.cast(image, tf.float32) / 255.0


def resize_tf(image: tf.Tensor, size: tuple[int, int], key: str = "image") -> tf.Tensor:
    """Resizes one (height, width, channels) array the way its element key requires.

    Soft keys (``SOFT_KEYS``: image, edge, prior) use bilinear interpolation with half-pixel
    centres (PyTorch ``align_corners=False``), no antialiasing; label keys (``LABEL_KEYS``)
    use nearest neighbour and keep their dtype, so only existing label values appear.

    Args:
        image: tensor (height, width, channels).
        size: (height, width) in pixels.
        key: element key naming the kind of array. Defaults to "image".

    Returns:
        tensor (size[0], size[1], channels): float32 for soft keys, the input dtype for labels.
    """
    if key in LABEL_KEYS:
        return tf.image.resize(image, size, method="nearest")
    if key in SOFT_KEYS:
        return tf.image.resize(tf.cast(image, tf.float32), size, method="bilinear",
                               antialias=False)
    raise ValueError(f"Unknown element key; expected one of {SOFT_KEYS + LABEL_KEYS}. "
                     f"Received: key={key!r}")


def model_input_tf(image: tf.Tensor, channels: int, normalisation: str) -> tf.Tensor:
    """Turns a one-channel [0, 1] image into the model's input channels and scaling.

    Args:
        image: float32 tensor (..., 1) in [0, 1].
        channels: 1, or 3 equal channels for ImageNet backbones.
        normalisation: "unit" keeps [0, 1]; "imagenet" needs 3 channels and applies the
            ImageNet mean and standard deviation.

    Returns:
        float32 tensor (..., channels).
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3. Received: channels={channels}")
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"normalisation must be one of {NORMALISATIONS}. Received: "
                         f"normalisation={normalisation!r}")
    if normalisation == "imagenet" and channels != 3:
        raise ValueError(f"ImageNet normalisation needs 3 channels. Received: channels={channels}")
    image = tf.repeat(image, channels, axis=-1) if channels == 3 else image
    if normalisation == "imagenet":
        mean, std = tf.constant(IMAGENET_MEAN, tf.float32), tf.constant(IMAGENET_STD, tf.float32)
        image = (image - mean) / std
    return image


# Keyed wrappers.


def resize_element(element: dict, size: tuple[int, int]) -> dict:
    """Resizes every spatial key of an element with its rule (``resize_tf``); others pass."""
    return {key: resize_tf(value, size, key) if key in SOFT_KEYS + LABEL_KEYS else value
            for key, value in element.items()}


def model_input_element(element: dict, channels: int, normalisation: str) -> dict:
    """Applies ``model_input_tf`` to the image and, when present, the prior.

    The prior is scaled like the image, as in the multi-class references, whose 6-channel
    input is [image, prior] with both ImageNet-normalised.
    """
    return {key: model_input_tf(value, channels, normalisation) if key in ("image", "prior")
            else value for key, value in element.items()}
