"""VGG16 convolutional features (Simonyan and Zisserman, ICLR 2015), torchvision's
``vgg16().features``, as the FCN8s encoder of SSInfNet (spec 5.8).

Features are keyed by stride: "s8" (after pool3), "s16" (pool4), "s32" (pool5). Layer names are
torchvision's indices, ``features_0`` for ``features.0`` (conv layers at 0, 2, 5, 7, 10, 12,
14, 17, 19, 21, 24, 26, 28; pools at 4, 9, 16, 23, 30), so a PyTorch checkpoint maps by name.
Pools are 2x2 stride 2 without padding (PyTorch floors odd sizes).

Inputs of other than 3 channels start from a 3-channel weights file as the reference does
(SSInfNet fcn8.py): the first kernel is tiled along its input-channel axis, twice for 6
channels, without rescaling. Deviation: channel counts that are not multiples of 3 take the
first ``input_channels`` channels of the tiling (the reference only ever tiles to 6).
"""

from __future__ import annotations

import os

import keras
import numpy as np
from keras import layers

from tfcovid.models.base import TfcovidModel, check_weights_path
from tfcovid.models.layers import torch_bias_initializer, torch_kernel_initializer
from tfcovid.registry import BACKBONES

FEATURE_KEYS = ("s2", "s4", "s8", "s16", "s32")
TAPS = ("s8", "s16", "s32")


@keras.saving.register_keras_serializable(package="tfcovid")
class VGG16Backbone(TfcovidModel):
    """VGG16 convolutional stages (3x3 convolutions with bias and ReLU, 2x2 max-pools).

    Args:
        input_channels: int. Channels of the input images. Defaults to 3.
        stackwise_filters: (int, int, int, int, int). Channels of the five stages. Defaults to
            (64, 128, 256, 512, 512).
        stackwise_num_convs: (int, int, int, int, int). Convolutions per stage. Defaults to
            (2, 2, 3, 3, 3).
        **kwargs: passed to ``keras.Model`` (name, trainable).

    Call returns:
        dict with "s8", "s16", "s32": the pooled outputs of stages 3, 4, 5, (batch,
        floor(height / stride), floor(width / stride), channels of the stage), for inputs
        (batch, height, width, input_channels).

    Example:

    >>> import numpy as np
    >>> backbone = VGG16Backbone(stackwise_filters=(4, 8, 16, 16, 32),
    ...                          stackwise_num_convs=(1, 1, 1, 1, 1))
    >>> {key: tuple(value.shape) for key, value in backbone(np.zeros((1, 64, 96, 3))).items()}
    {'s8': (1, 8, 12, 16), 's16': (1, 4, 6, 16), 's32': (1, 2, 3, 32)}

    Reference: Simonyan and Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
    Recognition", ICLR 2015; torchvision ``vgg16``.
    """

    def __init__(self, input_channels: int = 3, stackwise_filters=(64, 128, 256, 512, 512),
                 stackwise_num_convs=(2, 2, 3, 3, 3), **kwargs):
        stackwise_filters = tuple(stackwise_filters)
        stackwise_num_convs = tuple(stackwise_num_convs)
        if len(stackwise_filters) != 5 or len(stackwise_num_convs) != 5 or min(
                stackwise_num_convs) < 1:
            raise ValueError("stackwise_filters and stackwise_num_convs must hold 5 ints (one per "
                             f"stage), each stage at least one convolution. Received: "
                             f"stackwise_filters={stackwise_filters}, "
                             f"stackwise_num_convs={stackwise_num_convs}")
        inputs = keras.Input(shape=(None, None, input_channels), name="images")
        x, index, features = inputs, 0, {}
        for filters, num_convs, key in zip(stackwise_filters, stackwise_num_convs, FEATURE_KEYS):
            for _ in range(num_convs):
                fan_in = x.shape[-1] * 9
                x = layers.Conv2D(filters, 3, padding="same",  # stride 1: PyTorch padding 1
                                  kernel_initializer=torch_kernel_initializer(),
                                  bias_initializer=torch_bias_initializer(fan_in),
                                  name=f"features_{index}")(x)
                x = layers.ReLU(name=f"features_{index + 1}")(x)
                index += 2
            x = layers.MaxPooling2D(2, padding="valid", name=f"features_{index}")(x)
            index += 1
            features[key] = x
        super().__init__(inputs=inputs, outputs={key: features[key] for key in TAPS}, **kwargs)
        self.input_channels = input_channels
        self.stackwise_filters, self.stackwise_num_convs = stackwise_filters, stackwise_num_convs

    def get_config(self):
        return {**super().get_config(), "input_channels": self.input_channels,
                "stackwise_filters": self.stackwise_filters,
                "stackwise_num_convs": self.stackwise_num_convs}


def tile_first_kernel(kernel: np.ndarray, input_channels: int) -> np.ndarray:
    """Widens a first-layer kernel to ``input_channels`` by tiling its input-channel axis.

    Args:
        kernel: array (kernel_height, kernel_width, channels, filters).
        input_channels: int. Input channels of the widened kernel.

    Returns:
        Array (kernel_height, kernel_width, input_channels, filters): channel ``c`` is the
        kernel's channel ``c mod channels``, not rescaled (spec 5.8).

    Example:

    >>> kernel = np.arange(3.0).reshape(1, 1, 3, 1)
    >>> tile_first_kernel(kernel, 6).ravel().tolist()
    [0.0, 1.0, 2.0, 0.0, 1.0, 2.0]
    """
    if input_channels < 1:
        raise ValueError(f"input_channels must be positive. Received: input_channels="
                         f"{input_channels}")
    repeats = -(-input_channels // kernel.shape[2])
    return np.tile(kernel, (1, 1, repeats, 1))[:, :, :input_channels]


def _build(name: str, input_channels: int, weights_path: str | os.PathLike | None,
           **kwargs) -> VGG16Backbone:
    if weights_path is not None:
        check_weights_path(weights_path)  # fail before the graph is built
    backbone = VGG16Backbone(input_channels=input_channels, name=name, **kwargs)
    if weights_path is None:
        return backbone
    if input_channels == 3:
        backbone.load_weights_file(weights_path)
        return backbone
    source = VGG16Backbone(input_channels=3, name=name, **kwargs)
    source.load_weights_file(weights_path)
    first, *rest = source.get_weights()
    backbone.set_weights([tile_first_kernel(first, input_channels), *rest])
    return backbone


@BACKBONES.register("vgg16")
def vgg16(input_channels: int = 3,
          weights_path: str | os.PathLike | None = None) -> VGG16Backbone:
    """VGG16 features with taps "s8", "s16", "s32" (spec 5.8).

    Args:
        input_channels: int. Channels of the input images. Defaults to 3.
        weights_path: str, path or None. A local ``.weights.h5`` file saved from a 3-channel
            ``vgg16`` (no download happens); for other channel counts its first kernel is tiled
            (``tile_first_kernel``). Defaults to None (PyTorch's default initialisation).

    Raises:
        WeightsError: ``weights_path`` is missing or does not fit a 3-channel VGG16.
    """
    return _build("vgg16", input_channels, weights_path)


@BACKBONES.register("vgg16_tiny")
def vgg16_tiny(input_channels: int = 3,
               weights_path: str | os.PathLike | None = None) -> VGG16Backbone:
    """A narrow VGG for tests and smoke runs: filters (4, 8, 16, 16, 32), one convolution per
    stage.

    Args and Raises: as ``vgg16``.
    """
    return _build("vgg16_tiny", input_channels, weights_path,
                  stackwise_filters=(4, 8, 16, 16, 32), stackwise_num_convs=(1, 1, 1, 1, 1))
