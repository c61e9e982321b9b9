"""Small blocks shared by the models: ``ConvBN``, bilinear resizing, PyTorch initialisers.

Bilinear resizing comes in the two PyTorch flavours the reference code mixes (spec sections 0.2,
2.2, 15): ``align_corners=False`` (half-pixel centres, no antialiasing), which is
``tf.image.resize(..., antialias=False)`` to the explicit output size, and ``align_corners=True``
(corner pixels aligned: output pixel ``j`` samples input coordinate ``j * (in - 1) / (out - 1)``),
which Keras lacks and is written here with gathers.

Example:

>>> import numpy as np
>>> images = np.array([0.0, 3.0], "float32").reshape(1, 1, 2, 1)
>>> resize_bilinear(images, (1, 4), align_corners=True).numpy().ravel().tolist()
[0.0, 1.0, 2.0, 3.0]
>>> resize_bilinear(images, (1, 4), align_corners=False).numpy().ravel().tolist()
[0.0, 0.75, 2.25, 3.0]
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from tfcovid.models.batch_norm import BatchNormalization


def torch_kernel_initializer() -> keras.initializers.Initializer:
    """PyTorch's default convolution kernel initialiser, Kaiming-uniform with a = sqrt(5).

    Its bound is ``sqrt(6 / ((1 + a^2) fan_in)) = sqrt(1 / fan_in)``, the bound of
    ``VarianceScaling(1/3, "fan_in", "uniform")`` (spec sections 2.7, 15).
    """
    return keras.initializers.VarianceScaling(1 / 3, mode="fan_in", distribution="uniform")


def torch_bias_initializer(fan_in: int) -> keras.initializers.Initializer:
    """PyTorch's default convolution bias initialiser, U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    Args:
        fan_in: int. Input channels times kernel height times kernel width.
    """
    bound = 1 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound)


@keras.saving.register_keras_serializable(package="tfcovid")
class ConvBN(keras.layers.Layer):
    """Bias-free convolution then batch norm, no activation (spec section 1, `BasicConv2d`).

    The kernel starts from PyTorch's default initialiser (spec section 2.7); sublayers share the
    block's dtype policy, so a ``dtype="float32"`` logit head stays float32 under mixed precision.

    Args:
        filters: int. Output channels.
        kernel_size: int or (int, int). Defaults to 3.
        dilation_rate: int. Defaults to 1.
    """

    def __init__(self, filters, kernel_size=3, dilation_rate=1, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.dilation_rate = filters, kernel_size, dilation_rate
        self.conv = keras.layers.Conv2D(filters, kernel_size, padding="same",
                                        dilation_rate=dilation_rate, use_bias=False,
                                        kernel_initializer=torch_kernel_initializer(),
                                        dtype=self.dtype_policy, name="conv")
        self.bn = BatchNormalization(momentum=0.9, epsilon=1e-5,  # PyTorch 0.1
                                     dtype=self.dtype_policy, name="bn")

    def build(self, input_shape):
        self.conv.build(input_shape)
        self.bn.build(self.compute_output_shape(input_shape))

    def call(self, inputs, training=None):
        return self.bn(self.conv(inputs), training=training)

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "dilation_rate": self.dilation_rate}


def spatial_size(images) -> tuple:
    """(height, width) of a (batch, height, width, channels) tensor: ints where static, else
    scalar int32 tensors."""
    dynamic = tf.shape(images)
    return tuple(images.shape[axis] if images.shape[axis] is not None else dynamic[axis]
                 for axis in (1, 2))


def resize_bilinear(images, size, align_corners: bool = False):
    """Bilinear resize without antialiasing, with PyTorch's ``align_corners`` semantics.

    Args:
        images: float tensor (batch, height, width, channels).
        size: (height, width) of the output in pixels, ints or scalar int tensors.
        align_corners: bool. True aligns the corner pixels: output pixel ``j`` of an axis reads
            input coordinate ``j * (in - 1) / (out - 1)`` (0 when ``out`` is 1). False uses
            half-pixel centres, ``(j + 0.5) * in / out - 0.5`` clamped to the image.
            Defaults to False.

    Returns:
        Tensor (batch, size[0], size[1], channels) of the dtype of ``images``.
    """
    images = tf.convert_to_tensor(images)
    if not align_corners:
        # The resize kernel computes in float32 for any input; feeding it float32 keeps its
        # gradient (ResizeBilinearGrad) in float32 too, which XLA needs under mixed precision.
        resized = tf.image.resize(tf.cast(images, tf.float32), size, method="bilinear",
                                  antialias=False)
        return tf.cast(resized, images.dtype)
    for axis, out_size in zip((1, 2), size):
        images = _resize_axis_align_corners(images, out_size, axis)
    return images


def _resize_axis_align_corners(images, out_size, axis):
    in_size = spatial_size(images)[axis - 1]
    scale = tf.cast(in_size - 1, tf.float32) / tf.cast(tf.maximum(out_size - 1, 1), tf.float32)
    source = tf.range(out_size, dtype=tf.float32) * scale
    lower = tf.floor(source)
    lower_index = tf.cast(lower, tf.int32)
    upper_index = tf.minimum(lower_index + 1, in_size - 1)
    weight = tf.cast(source - lower, images.dtype)
    weight = tf.reshape(weight, [-1, 1, 1] if axis == 1 else [-1, 1])
    below = tf.gather(images, lower_index, axis=axis)
    above = tf.gather(images, upper_index, axis=axis)
    return below + (above - below) * weight


@keras.saving.register_keras_serializable(package="tfcovid")
class BilinearResize(keras.layers.Layer):
    """Resizes images bilinearly to the height and width of a reference tensor.

    Resizing to the reference's explicit size reproduces PyTorch's ``interpolate(scale_factor=s)``
    wherever ``in * s`` is the reference size (spec section 0.2), and keeps working for inputs
    whose size is not a multiple of the network's stride.

    Args:
        align_corners: bool. See ``resize_bilinear``. Defaults to False.

    Call args:
        inputs: float tensor (batch, height, width, channels).
        reference: tensor (batch, out_height, out_width, any channels); only its size is read.

    Returns:
        Tensor (batch, out_height, out_width, channels).
    """

    def __init__(self, align_corners: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.align_corners = align_corners

    def call(self, inputs, reference):
        return resize_bilinear(inputs, spatial_size(reference), self.align_corners)

    def compute_output_shape(self, inputs_shape, reference_shape):
        return (inputs_shape[0], reference_shape[1], reference_shape[2], inputs_shape[3])

    def get_config(self):
        return {**super().get_config(), "align_corners": self.align_corners}
