"""Multi-class U-Net of the Inf-Net repo ("Inf_Net_UNet", InfNet_UNet.py + module/unet_parts.py;
spec section 5.1) and SSInfNet's "improved" U-Net ("Inf_Net_UNet_Improved"; spec section 5.2).

Data flow, for an input of height h and width w (``variant="improved"`` adds the bracketed
re-injections of the raw input)::

    inc    DoubleConv              -> x1  f0   (h)
    down1  max-pool 2, DoubleConv  -> x2  f1   (h/2)
    down2  max-pool 2, DoubleConv  -> x3  f2   (h/4)    [x3 = concat(x3, nearest(input))]
    down3  max-pool 2, DoubleConv  -> x4  f3   (h/8)
    down4  max-pool 2, DoubleConv  -> x5  f3   (h/16)   [x5 = concat(x5, nearest(input))]
    up1..up4: upsample x2 (bilinear, align_corners=True), zero-pad to the skip's size,
              concat(skip, upsampled), DoubleConv(mid = input channels / 2) -> f2, f1, f0, f0
    outc   1x1 convolution with bias -> logits (h)

``nearest`` is PyTorch's nearest resize (source index floor(dst * in / out)) to the size of the
feature it joins; for the 352 px reference (88 and 22 px) it is the strided slice
``x[:, ::4, ::4]`` and ``x[:, ::16, ::16]``.

Deliberate deviations from the reference code:

- The output is a dict ``{"logits": ...}``; ``predict`` returns the logits alone.
- The improved variant re-injects the input at the size of the feature it joins, not at the
  hard-coded 88 and 22 px, so it runs at any input size (identical at 352 px).
- ``UNet`` builds the segmentation path only; the improved U-Net's inpainting decoder
  (``up1_inpainting`` ... ``out_inpainting``, spec 7.6) is a second ``decode`` over the same
  ``encode`` features, with the suffix "_inpainting", in
  ``tfcovid.models.ssinfnet.inpainting.UNetInpainting``.
- The logit head runs in float32, so under mixed precision the logits are float32.
- ``stackwise_filters`` (fixed at 64, 128, 256, 512 in the reference) is an argument, so a tiny
  model exists for tests.

Layer names follow the PyTorch parameter names (spec 5.1) with "." written "_", e.g.
``down1_maxpool_conv_1_double_conv_3`` for ``down1.maxpool_conv.1.double_conv.3``.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import keras
import tensorflow as tf
from keras import layers

from tfcovid.models.base import TfcovidModel
from tfcovid.models.batch_norm import BatchNormalization
from tfcovid.models.layers import (resize_bilinear, spatial_size, torch_bias_initializer,
                                   torch_kernel_initializer)
from tfcovid.registry import MODELS

VARIANTS = ("baseline", "improved")


@keras.saving.register_keras_serializable(package="tfcovid")
class UpsampleBilinear(keras.layers.Layer):
    """Bilinear upsampling by an integer factor, PyTorch ``nn.Upsample(scale_factor, "bilinear",
    align_corners)`` (output size ``in * scale``).

    Args:
        scale: int. Upsampling factor. Defaults to 2.
        align_corners: bool. See ``tfcovid.models.layers.resize_bilinear``. Defaults to True
            (the U-Net's ``Up``).

    Call args:
        inputs: float tensor (batch, height, width, channels).

    Returns:
        Tensor (batch, height * scale, width * scale, channels).
    """

    def __init__(self, scale: int = 2, align_corners: bool = True, **kwargs):
        super().__init__(**kwargs)
        if scale < 1:
            raise ValueError(f"scale must be a positive int. Received: scale={scale}")
        self.scale, self.align_corners = scale, align_corners

    def call(self, inputs):
        height, width = spatial_size(inputs)
        return resize_bilinear(inputs, (height * self.scale, width * self.scale),
                               self.align_corners)

    def compute_output_shape(self, input_shape):
        spatial = [None if size is None else size * self.scale for size in input_shape[1:3]]
        return (input_shape[0], *spatial, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "align_corners": self.align_corners}


@keras.saving.register_keras_serializable(package="tfcovid")
class PadToReference(keras.layers.Layer):
    """Zero-pads images to the height and width of a reference, as the U-Net's ``Up`` does:
    ``F.pad`` split evenly, the odd pixel going to the bottom and right.

    Call args:
        inputs: tensor (batch, height, width, channels), no larger than the reference.
        reference: tensor (batch, out_height, out_width, any channels); only its size is read.

    Returns:
        Tensor (batch, out_height, out_width, channels).
    """

    def call(self, inputs, reference):
        (height, width), (out_height, out_width) = spatial_size(inputs), spatial_size(reference)
        pad_height, pad_width = out_height - height, out_width - width
        paddings = [[0, 0], [pad_height // 2, pad_height - pad_height // 2],
                    [pad_width // 2, pad_width - pad_width // 2], [0, 0]]
        return tf.pad(inputs, paddings)

    def compute_output_shape(self, inputs_shape, reference_shape):
        return (inputs_shape[0], reference_shape[1], reference_shape[2], inputs_shape[3])


@keras.saving.register_keras_serializable(package="tfcovid")
class NearestResize(keras.layers.Layer):
    """Nearest-neighbour resize to a reference's size with PyTorch's ``mode="nearest"``: output
    pixel ``j`` of an axis reads input pixel ``floor(j * in / out)``.

    For ``in = k * out`` this is the strided slice ``x[:, ::k, ::k]`` (spec 5.2); Keras's
    nearest resize uses half-pixel centres and picks other pixels.

    Call args:
        inputs: tensor (batch, height, width, channels).
        reference: tensor (batch, out_height, out_width, any channels); only its size is read.

    Returns:
        Tensor (batch, out_height, out_width, channels).
    """

    def call(self, inputs, reference):
        for axis, in_size, out_size in zip((1, 2), spatial_size(inputs), spatial_size(reference)):
            indices = tf.range(out_size) * in_size // out_size  # integer floor, exact
            inputs = tf.gather(inputs, indices, axis=axis)
        return inputs

    def compute_output_shape(self, inputs_shape, reference_shape):
        return (inputs_shape[0], reference_shape[1], reference_shape[2], inputs_shape[3])


def _conv(x, filters, kernel_size, name, **kwargs):
    """Convolution with bias and PyTorch's default initialisers (spec 2.7)."""
    fan_in = x.shape[-1] * kernel_size * kernel_size
    return layers.Conv2D(filters, kernel_size, padding="same",
                         kernel_initializer=torch_kernel_initializer(),
                         bias_initializer=torch_bias_initializer(fan_in), name=name, **kwargs)(x)


def _double_conv(x, filters, mid_filters, name):
    """DoubleConv: (3x3 convolution with bias, BN, ReLU) twice; PyTorch ``double_conv.{0..5}``."""
    for index, width in ((0, mid_filters), (3, filters)):
        x = _conv(x, width, 3, f"{name}_double_conv_{index}")
        x = BatchNormalization(momentum=0.9, epsilon=1e-5,  # PyTorch momentum 0.1
                               name=f"{name}_double_conv_{index + 1}")(x)
        x = layers.ReLU(name=f"{name}_double_conv_{index + 2}")(x)
    return x


def _down(x, filters, name):
    """Down: 2x2 max-pool (floor, as PyTorch) then DoubleConv."""
    x = layers.MaxPooling2D(2, padding="valid", name=f"{name}_maxpool_conv_0")(x)
    return _double_conv(x, filters, filters, f"{name}_maxpool_conv_1")


def _up(x, skip, filters, name):
    """Up: bilinear x2 (align_corners=True), pad to the skip, concat(skip, x), DoubleConv."""
    x = UpsampleBilinear(2, align_corners=True, name=f"{name}_up")(x)
    x = PadToReference(name=f"{name}_pad")(x, skip)
    x = layers.Concatenate(name=f"{name}_cat")([skip, x])
    return _double_conv(x, filters, x.shape[-1] // 2, f"{name}_conv")


def encode(inputs, variant, stackwise_filters):
    """inc, down1..down4 with the improved variant's input re-injections (spec 5.1, 5.2).

    Args:
        inputs: symbolic tensor (batch, height, width, input_channels).
        variant: "baseline" or "improved".
        stackwise_filters: (int, int, int, int). Channels f0..f3.

    Returns:
        (x5, (x4, x3, x2, x1)): the deepest feature and the skips, deepest first.

    Raises:
        ValueError: an unknown variant, or not 4 filter counts of at least 2.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}. Received: variant={variant!r}")
    if len(stackwise_filters) != 4 or min(stackwise_filters) < 2:
        raise ValueError("stackwise_filters must hold 4 ints of at least 2 (inc, down1, "
                         f"down2, down3). Received: stackwise_filters={stackwise_filters}")
    f0, f1, f2, f3 = stackwise_filters
    x1 = _double_conv(inputs, f0, f0, "inc")
    x2 = _down(x1, f1, "down1")
    x3 = _down(x2, f2, "down2")
    if variant == "improved":
        x3 = _reinject(inputs, x3, "x3")
    x4 = _down(x3, f3, "down3")
    x5 = _down(x4, f3, "down4")
    if variant == "improved":
        x5 = _reinject(inputs, x5, "x5")
    return x5, (x4, x3, x2, x1)


def _reinject(inputs, features, name):
    resized = NearestResize(name=f"{name}_nearest")(inputs, features)
    return layers.Concatenate(name=f"{name}_cat")([features, resized])


def decode(x5, skips, stackwise_filters, suffix=""):
    """up1..up4 over the encoder features (x5; skips x4, x3, x2, x1), channels f2, f1, f0, f0.

    Args:
        x5: symbolic tensor, the deepest encoder feature.
        skips: (x4, x3, x2, x1), as ``encode`` returns them.
        stackwise_filters: (int, int, int, int). Channels f0..f3.
        suffix: str. Appended to the block names ("up1" + suffix ...), so a second decoder
            over the same features ("_inpainting", spec 5.2) gets its own layers. Defaults to "".

    Returns:
        Symbolic tensor (batch, height, width, f0).
    """
    f0, f1, f2, _ = stackwise_filters
    x = x5
    for index, (skip, filters) in enumerate(zip(skips, (f2, f1, f0, f0))):
        x = _up(x, skip, filters, f"up{index + 1}{suffix}")
    return x


@keras.saving.register_keras_serializable(package="tfcovid")
class UNet(TfcovidModel):
    """Multi-class U-Net with bilinear upsampling (spec 5.1), optionally with SSInfNet's input
    re-injection (spec 5.2).

    Args:
        input_channels: int. Channels of the input; the reference stacks the CT image (3) and the
            prior (3). Defaults to 6.
        num_classes: int. Logit channels: 0 background, 1 ground-glass opacity, 2 consolidation.
            Defaults to 3.
        variant: "baseline" (Inf_Net_UNet) or "improved" (Inf_Net_UNet_Improved, segmentation
            path: the raw input is concatenated to x3 and x5). Defaults to "baseline".
        stackwise_filters: (int, int, int, int). Channels f0..f3 of inc, down1, down2, down3;
            down4 has f3 (bilinear U-Net), up1..up4 have f2, f1, f0, f0. Defaults to
            (64, 128, 256, 512).
        **kwargs: passed to ``keras.Model`` (name, trainable).

    Call returns:
        dict with "logits": float32 (batch, height, width, num_classes) at the input size, for
        inputs (batch, height, width, input_channels) of any size of at least 16 px (odd sizes
        are padded in the decoder as in the reference). The reference trains sigmoid + BCE on a
        one-hot target and predicts the argmax. ``predict`` returns the logits.

    Example:

    >>> import numpy as np
    >>> model = UNet(stackwise_filters=(4, 8, 8, 16), variant="improved")
    >>> tuple(model(np.zeros((2, 50, 70, 6)))["logits"].shape)
    (2, 50, 70, 3)

    Reference: Fan et al., IEEE TMI 39(8), 2020 (multi-class Inf-Net); Fung et al., J Transl
    Med 19, 2021 (SSInfNet); spec sections 5.1, 5.2.
    """

    def __init__(self, input_channels: int = 6, num_classes: int = 3,
                 variant: Literal["baseline", "improved"] = "baseline",
                 stackwise_filters=(64, 128, 256, 512), **kwargs):
        stackwise_filters = tuple(stackwise_filters)
        inputs = keras.Input(shape=(None, None, input_channels), name="images")
        x5, skips = encode(inputs, variant, stackwise_filters)
        x = decode(x5, skips, stackwise_filters)
        logits = _conv(x, num_classes, 1, "outc_conv", dtype="float32")
        super().__init__(inputs=inputs, outputs={"logits": logits}, **kwargs)
        self.input_channels, self.num_classes = input_channels, num_classes
        self.variant, self.stackwise_filters = variant, stackwise_filters

    def predict_step(self, data):
        images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self(images, training=False)["logits"]

    def get_config(self):
        return {**super().get_config(), "input_channels": self.input_channels,
                "num_classes": self.num_classes, "variant": self.variant,
                "stackwise_filters": self.stackwise_filters}


@dataclasses.dataclass(frozen=True)
class UNetConfig:
    """Settings of the multi-class U-Net; defaults are the reference's (spec 5.1, 12).

    Attributes:
        input_channels: int. Input channels (6: CT 3 + prior 3).
        num_classes: int. Logit channels (3: background, GGO, consolidation).
        variant: "baseline" or "improved".
        stackwise_filters: (int, int, int, int). Channels of inc, down1, down2, down3.
    """

    input_channels: int = 6
    num_classes: int = 3
    variant: Literal["baseline", "improved"] = "baseline"
    stackwise_filters: tuple[int, int, int, int] = (64, 128, 256, 512)

    @classmethod
    def tiny(cls, **overrides) -> UNetConfig:
        """A narrow U-Net for tests and smoke runs (filters 4, 8, 8, 16; about 25 k parameters).

        Args:
            **overrides: fields replacing the tiny values.
        """
        return cls(**{"stackwise_filters": (4, 8, 8, 16), **overrides})


@MODELS.register("unet_multiclass", config=UNetConfig)
def build_unet(cfg: UNetConfig) -> UNet:
    """Multi-class U-Net (Inf_Net_UNet or Inf_Net_UNet_Improved); spec sections 5.1, 5.2."""
    return UNet(input_channels=cfg.input_channels, num_classes=cfg.num_classes,
                variant=cfg.variant, stackwise_filters=cfg.stackwise_filters,
                name="unet_multiclass")
