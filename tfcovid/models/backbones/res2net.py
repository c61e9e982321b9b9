"""Res2Net-50 v1b 26w x 4s backbone (Gao et al., TPAMI 2021), as in the Inf-Net repo (spec 1.1).

"v1b" is the deep stem (three 3x3 convolutions) with average-pool shortcut downsampling. The
features are keyed by stride: "s4" (layer1), "s8" (layer2), "s16" (layer3), "s32" (layer4).

Porting choices (spec sections 1.3 and 15): every strided convolution and pool pads explicitly
and symmetrically, then runs "valid" (Keras "same" pads bottom/right only on even inputs); the
stage-block average pool counts its zero padding in the divisor; the shortcut average pool
(kernel = stride, ceil mode, padding not counted) is a "same" pool, which pads bottom/right only
where a size is odd and leaves that padding out of the divisor. Layer names follow the PyTorch
parameter names (spec 2.9) with "." written "_", e.g. ``layer2_0_convs_1`` for
``resnet.layer2.0.convs.1``.

Deviation: the 2048 -> 1000 classifier and global pool, which Inf-Net never uses, are left out;
the trainable parameter count is the spec's 23,669,352 without the classifier.
"""

from __future__ import annotations

import os

import keras
from keras import layers, ops

from tfcovid.models.base import TfcovidModel
from tfcovid.models.batch_norm import BatchNormalization
from tfcovid.registry import BACKBONES

FEATURE_KEYS = ("s4", "s8", "s16", "s32")


def _kernel_initializer() -> keras.initializers.Initializer:
    # Res2Net.py: kaiming_normal_(mode="fan_out", nonlinearity="relu"), a plain (untruncated) normal
    return keras.initializers.VarianceScaling(2.0, mode="fan_out",
                                              distribution="untruncated_normal")


def _conv(x, filters, kernel_size, strides, name):
    """Bias-free convolution with PyTorch padding (kernel_size - 1) / 2."""
    padding = "same"
    if strides > 1:
        x = layers.ZeroPadding2D((kernel_size - 1) // 2, name=f"{name}_pad")(x)
        padding = "valid"
    return layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=False,
                         kernel_initializer=_kernel_initializer(), name=name)(x)


def _bn(x, name):
    return BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)(x)  # PyTorch 0.1


def _bottle2neck(x, planes, strides, is_stage_block, base_width, scale, name):
    """One Bottle2neck block (expansion 4), spec section 1.1 steps 1-5."""
    width = planes * base_width // 64
    y = _conv(x, width * scale, 1, 1, f"{name}_conv1")
    y = layers.ReLU(name=f"{name}_relu1")(_bn(y, f"{name}_bn1"))
    splits = ops.split(y, scale, axis=-1)
    outputs = []
    for index in range(scale - 1):
        branch = splits[index]
        if index > 0 and not is_stage_block:
            branch = layers.Add(name=f"{name}_sum_{index}")([outputs[-1], branch])
        branch = _conv(branch, width, 3, strides, f"{name}_convs_{index}")
        outputs.append(layers.ReLU(name=f"{name}_relu_{index}")(_bn(branch, f"{name}_bns_{index}")))
    last = splits[-1]
    if is_stage_block:
        last = layers.ZeroPadding2D(1, name=f"{name}_pool_pad")(last)  # padding counted, /9
        last = layers.AveragePooling2D(3, strides=strides, padding="valid",
                                       name=f"{name}_pool")(last)
    outputs.append(last)
    y = layers.Concatenate(name=f"{name}_cat")(outputs)
    y = _bn(_conv(y, planes * 4, 1, 1, f"{name}_conv3"), f"{name}_bn3")
    shortcut = x
    if is_stage_block:
        if strides > 1:
            shortcut = layers.AveragePooling2D(strides, strides=strides, padding="same",
                                               name=f"{name}_downsample_0")(shortcut)
        shortcut = _conv(shortcut, planes * 4, 1, 1, f"{name}_downsample_1")
        shortcut = _bn(shortcut, f"{name}_downsample_2")
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_out")(y)


@keras.saving.register_keras_serializable(package="tfcovid")
class Res2NetBackbone(TfcovidModel):
    """Res2Net v1b backbone returning stride-4 to stride-32 features (spec section 1.1).

    Args:
        input_channels: int. Channels of the input images. Defaults to 3.
        stem_filters: (int, int, int). Output channels of the three stem convolutions; the last
            is the channels of the stride-4 stem output. Defaults to (32, 32, 64).
        stackwise_planes: tuple of int. Bottleneck planes p of each stage; a stage outputs 4p
            channels. Defaults to (64, 128, 256, 512).
        stackwise_num_blocks: tuple of int. Blocks per stage. Defaults to (3, 4, 6, 3).
        base_width: int. Split width of a block is floor(p * base_width / 64). Defaults to 26.
        scale: int. Splits per block (the "4s"). Defaults to 4.
        **kwargs: passed to ``keras.Model`` (name, trainable).

    Call returns:
        dict with "s4", "s8", "s16", "s32": features (batch, height / stride, width / stride,
        4 p) of stages 1-4, for inputs (batch, height, width, input_channels) with height and
        width multiples of 32.

    Example:

    >>> import numpy as np
    >>> backbone = Res2NetBackbone(stem_filters=(4, 4, 8), stackwise_planes=(4, 8, 8, 8),
    ...                            stackwise_num_blocks=(1, 1, 1, 1))
    >>> {key: tuple(value.shape) for key, value in backbone(np.zeros((1, 64, 96, 3))).items()}
    {'s4': (1, 16, 24, 16), 's8': (1, 8, 12, 32), 's16': (1, 4, 6, 32), 's32': (1, 2, 3, 32)}

    Reference: Gao et al., "Res2Net: A New Multi-scale Backbone Architecture", TPAMI 2021.
    """

    def __init__(self, input_channels: int = 3, stem_filters=(32, 32, 64),
                 stackwise_planes=(64, 128, 256, 512), stackwise_num_blocks=(3, 4, 6, 3),
                 base_width: int = 26, scale: int = 4, **kwargs):
        stem_filters, stackwise_planes = tuple(stem_filters), tuple(stackwise_planes)
        stackwise_num_blocks = tuple(stackwise_num_blocks)
        if len(stem_filters) != 3:
            raise ValueError(
                f"stem_filters must hold 3 ints. Received: stem_filters={stem_filters}")
        if len(stackwise_planes) != 4 or len(stackwise_num_blocks) != 4:
            raise ValueError("stackwise_planes and stackwise_num_blocks must hold 4 ints (one per "
                             f"stage). Received: stackwise_planes={stackwise_planes}, "
                             f"stackwise_num_blocks={stackwise_num_blocks}")
        if scale < 2 or min(stackwise_num_blocks) < 1 or min(stackwise_planes) * base_width < 64:
            raise ValueError("scale must be >= 2, every stage needs a block and a split width of "
                             f"at least 1. Received: scale={scale}, stackwise_num_blocks="
                             f"{stackwise_num_blocks}, stackwise_planes={stackwise_planes}, "
                             f"base_width={base_width}")
        inputs = keras.Input(shape=(None, None, input_channels), name="images")
        x = inputs
        for index, filters in zip((0, 3, 6), stem_filters):
            x = _conv(x, filters, 3, 2 if index == 0 else 1, f"conv1_{index}")
            if index < 6:
                x = layers.ReLU(name=f"conv1_{index + 2}")(_bn(x, f"conv1_{index + 1}"))
        x = layers.ReLU(name="relu")(_bn(x, "bn1"))
        x = layers.ZeroPadding2D(1, name="maxpool_pad")(x)  # zeros = -inf padding after a ReLU
        x = layers.MaxPooling2D(3, strides=2, padding="valid", name="maxpool")(x)
        features = {}
        for stage, (planes, num_blocks, key) in enumerate(
                zip(stackwise_planes, stackwise_num_blocks, FEATURE_KEYS)):
            for block in range(num_blocks):
                x = _bottle2neck(x, planes, strides=2 if stage > 0 and block == 0 else 1,
                                 is_stage_block=block == 0, base_width=base_width, scale=scale,
                                 name=f"layer{stage + 1}_{block}")
            features[key] = x
        super().__init__(inputs=inputs, outputs=features, **kwargs)
        self.input_channels, self.stem_filters = input_channels, stem_filters
        self.stackwise_planes, self.stackwise_num_blocks = stackwise_planes, stackwise_num_blocks
        self.base_width, self.scale = base_width, scale

    def get_config(self):
        return {**super().get_config(), "input_channels": self.input_channels,
                "stem_filters": self.stem_filters, "stackwise_planes": self.stackwise_planes,
                "stackwise_num_blocks": self.stackwise_num_blocks,
                "base_width": self.base_width, "scale": self.scale}


@BACKBONES.register("res2net50_v1b_26w_4s")
def res2net50_v1b_26w_4s(input_channels: int = 3,
                         weights_path: str | os.PathLike | None = None) -> Res2NetBackbone:
    """Res2Net-50 v1b 26w x 4s, the Inf-Net default backbone (spec section 1.1).

    Args:
        input_channels: int. Channels of the input images. Defaults to 3.
        weights_path: str, path or None. A local ``.weights.h5`` file saved from this backbone
            (no download happens). Defaults to None (Kaiming-normal initialisation).

    Raises:
        WeightsError: ``weights_path`` is missing or does not fit.
    """
    return Res2NetBackbone.with_weights(weights_path, name="res2net50_v1b_26w_4s",
                                        input_channels=input_channels)


@BACKBONES.register("res2net_tiny")
def res2net_tiny(input_channels: int = 3,
                 weights_path: str | os.PathLike | None = None) -> Res2NetBackbone:
    """A narrow, shallow Res2Net v1b for tests and smoke runs: stem (8, 8, 16), planes
    (8, 16, 32, 64) (features of 32, 64, 128, 256 channels), blocks (1, 2, 1, 1).

    Args and Raises: as ``res2net50_v1b_26w_4s``.
    """
    return Res2NetBackbone.with_weights(
        weights_path, name="res2net_tiny", input_channels=input_channels,
        stem_filters=(8, 8, 16), stackwise_planes=(8, 16, 32, 64),
        stackwise_num_blocks=(1, 2, 1, 1))
