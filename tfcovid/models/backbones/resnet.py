"""ResNet backbones in the torchvision "v1.5" layout (He et al., CVPR 2016); spec sections 1.2, 7.3.

``ResNetBackbone`` builds both block types: Bottleneck (ResNet-50, the SSInfNet segmentation
backbone, spec 1.2) and BasicBlock (the ResNet-18 body of the coach network, spec 7.3). The stride
of a bottleneck sits on its 3x3 convolution, the shortcut downsample is a strided bias-free 1x1
convolution then batch norm, and the stem is a 7x7/2 convolution, batch norm, ReLU and (unless
``stem_max_pool=False``, as in the coach) a 3x3/2 max-pool.

Features are keyed by their stride: ResNet-50 gives "s4" (layer1), "s8", "s16", "s32" (layer4),
the keys and channels of the Res2Net backbone, so Inf-Net can take either; the coach body, with
no max-pool and strides (1, 2, 2, 2), gives "s2", "s4", "s8", "s16".

Porting choices (spec section 1.3): strided convolutions and the max-pool pad explicitly and
symmetrically ((kernel - 1) / 2), then run "valid", since Keras "same" pads bottom/right only on
even inputs; zero padding before the max-pool equals PyTorch's -inf padding after a ReLU. Layer
names are the torchvision parameter names with "." written "_" (``layer2_0_downsample_0`` for
``layer2.0.downsample.0``), so a name map can import torchvision weights.

Deviation: the global pool and 2048 -> 1000 classifier are left out (the reference defines none).
"""

from __future__ import annotations

import os

import keras
from keras import layers

from tfcovid.models.base import TfcovidModel
from tfcovid.models.batch_norm import BatchNormalization
from tfcovid.registry import BACKBONES

BLOCK_TYPES = ("basic", "bottleneck")


class _Initializers:
    """Kaiming-normal (fan_out, ReLU gain) kernels, each with its own seed derived from ``seed``.

    torchvision's ``kaiming_normal_(mode="fan_out", nonlinearity="relu")`` and the coach's
    N(0, sqrt(2 / n)), n = k * k * out_channels (spec 7.3), are the same distribution.
    """

    def __init__(self, seed: int | None):
        self.seed, self.count = seed, 0

    def __call__(self) -> keras.initializers.Initializer:
        seed = None if self.seed is None else self.seed + self.count
        self.count += 1
        return keras.initializers.VarianceScaling(2.0, mode="fan_out",
                                                  distribution="untruncated_normal", seed=seed)


def _conv(x, filters, kernel_size, strides, initializers, name):
    """Bias-free convolution with PyTorch padding (kernel_size - 1) / 2."""
    padding = "same"
    if strides > 1 and kernel_size > 1:
        x = layers.ZeroPadding2D((kernel_size - 1) // 2, name=f"{name}_pad")(x)
        padding = "valid"
    elif strides > 1:
        padding = "valid"  # a strided 1x1 samples pixels 0, s, 2s, ... as in PyTorch
    return layers.Conv2D(filters, kernel_size, strides=strides, padding=padding, use_bias=False,
                         kernel_initializer=initializers(), name=name)(x)


def _bn(x, name):
    return BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)(x)  # PyTorch 0.1


def _block(x, block_type, filters, strides, initializers, name):
    """One BasicBlock (expansion 1) or Bottleneck (expansion 4, stride on the 3x3 conv)."""
    expansion = 4 if block_type == "bottleneck" else 1
    if block_type == "bottleneck":
        y = layers.ReLU(name=f"{name}_relu1")(
            _bn(_conv(x, filters, 1, 1, initializers, f"{name}_conv1"), f"{name}_bn1"))
        y = layers.ReLU(name=f"{name}_relu2")(
            _bn(_conv(y, filters, 3, strides, initializers, f"{name}_conv2"), f"{name}_bn2"))
        y = _bn(_conv(y, filters * 4, 1, 1, initializers, f"{name}_conv3"), f"{name}_bn3")
    else:
        y = layers.ReLU(name=f"{name}_relu1")(
            _bn(_conv(x, filters, 3, strides, initializers, f"{name}_conv1"), f"{name}_bn1"))
        y = _bn(_conv(y, filters, 3, 1, initializers, f"{name}_conv2"), f"{name}_bn2")
    shortcut = x
    if strides > 1 or x.shape[-1] != filters * expansion:
        shortcut = _conv(x, filters * expansion, 1, strides, initializers,
                         f"{name}_downsample_0")
        shortcut = _bn(shortcut, f"{name}_downsample_1")
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([y, shortcut]))


@keras.saving.register_keras_serializable(package="tfcovid")
class ResNetBackbone(TfcovidModel):
    """ResNet backbone (torchvision v1.5 layout) returning one feature per stage, keyed by stride.

    Args:
        input_channels: int. Channels of the input images. Defaults to 3.
        block_type: str. "bottleneck" (expansion 4, ResNet-50) or "basic" (expansion 1,
            ResNet-18). Defaults to "bottleneck".
        stem_filters: int. Output channels of the 7x7/2 stem convolution. Defaults to 64.
        stem_max_pool: bool. Whether the 3x3/2 max-pool follows the stem. Defaults to True.
        stackwise_filters: tuple of int. Planes of each stage; a stage outputs ``planes *
            expansion`` channels. Defaults to (64, 128, 256, 512).
        stackwise_num_blocks: tuple of int. Blocks per stage. Defaults to (3, 4, 6, 3).
        stackwise_strides: tuple of int. Stride of the first block of each stage. Defaults to
            (1, 2, 2, 2).
        seed: int or None. Seed of the kernel initialisers (each convolution gets ``seed + i``);
            None draws fresh values. Defaults to None.
        **kwargs: passed to ``keras.Model`` (name, trainable).

    Call returns:
        dict ``{"s<stride>": (batch, height / stride, width / stride, channels)}``, one entry per
        stage, in stage order, for inputs (batch, height, width, input_channels) whose height and
        width are multiples of the last stride.

    Example:

    >>> import numpy as np
    >>> backbone = ResNetBackbone(stem_filters=4, stackwise_filters=(4, 8, 8, 8),
    ...                           stackwise_num_blocks=(1, 1, 1, 1))
    >>> {key: tuple(value.shape) for key, value in backbone(np.zeros((1, 64, 96, 3))).items()}
    {'s4': (1, 16, 24, 16), 's8': (1, 8, 12, 32), 's16': (1, 4, 6, 32), 's32': (1, 2, 3, 32)}

    Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
    """

    def __init__(self, input_channels: int = 3, block_type: str = "bottleneck",
                 stem_filters: int = 64, stem_max_pool: bool = True,
                 stackwise_filters=(64, 128, 256, 512), stackwise_num_blocks=(3, 4, 6, 3),
                 stackwise_strides=(1, 2, 2, 2), seed: int | None = None, **kwargs):
        stackwise_filters = tuple(stackwise_filters)
        stackwise_num_blocks, stackwise_strides = tuple(stackwise_num_blocks), tuple(
            stackwise_strides)
        if block_type not in BLOCK_TYPES:
            raise ValueError(f"block_type must be one of {BLOCK_TYPES}. "
                             f"Received: block_type={block_type!r}")
        if not (len(stackwise_filters) == len(stackwise_num_blocks) == len(stackwise_strides)
                and stackwise_filters):
            raise ValueError("stackwise_filters, stackwise_num_blocks and stackwise_strides must "
                             f"have one entry per stage. Received: stackwise_filters="
                             f"{stackwise_filters}, stackwise_num_blocks={stackwise_num_blocks}, "
                             f"stackwise_strides={stackwise_strides}")
        if min(stackwise_num_blocks) < 1 or min(stackwise_strides) < 1:
            raise ValueError("every stage needs a block and a stride of at least 1. Received: "
                             f"stackwise_num_blocks={stackwise_num_blocks}, "
                             f"stackwise_strides={stackwise_strides}")
        initializers = _Initializers(seed)
        inputs = keras.Input(shape=(None, None, input_channels), name="images")
        x = _conv(inputs, stem_filters, 7, 2, initializers, "conv1")
        x = layers.ReLU(name="relu")(_bn(x, "bn1"))
        stride = 2
        if stem_max_pool:
            x = layers.ZeroPadding2D(1, name="maxpool_pad")(x)  # zeros = -inf after a ReLU
            x = layers.MaxPooling2D(3, strides=2, padding="valid", name="maxpool")(x)
            stride = 4
        features = {}
        for stage, (filters, num_blocks, stage_stride) in enumerate(
                zip(stackwise_filters, stackwise_num_blocks, stackwise_strides)):
            for block in range(num_blocks):
                x = _block(x, block_type, filters, stage_stride if block == 0 else 1,
                           initializers, name=f"layer{stage + 1}_{block}")
            stride *= stage_stride
            features[f"s{stride}"] = x
        if len(features) != len(stackwise_filters):
            raise ValueError("two stages share a stride, so their features would share a key. "
                             f"Received: stackwise_strides={stackwise_strides}")
        super().__init__(inputs=inputs, outputs=features, **kwargs)
        self.input_channels, self.block_type = input_channels, block_type
        self.stem_filters, self.stem_max_pool = stem_filters, stem_max_pool
        self.stackwise_filters, self.stackwise_num_blocks = stackwise_filters, stackwise_num_blocks
        self.stackwise_strides, self.seed = stackwise_strides, seed

    def get_config(self):
        return {**super().get_config(), "input_channels": self.input_channels,
                "block_type": self.block_type, "stem_filters": self.stem_filters,
                "stem_max_pool": self.stem_max_pool, "stackwise_filters": self.stackwise_filters,
                "stackwise_num_blocks": self.stackwise_num_blocks,
                "stackwise_strides": self.stackwise_strides, "seed": self.seed}


@BACKBONES.register("resnet50")
def resnet50(input_channels: int = 3,
             weights_path: str | os.PathLike | None = None) -> ResNetBackbone:
    """ResNet-50 (torchvision v1.5 layout), the SSInfNet backbone (spec section 1.2).

    Args:
        input_channels: int. Channels of the input images. Defaults to 3.
        weights_path: str, path or None. A local ``.weights.h5`` file saved from this backbone
            (no download happens). Defaults to None (Kaiming-normal initialisation).

    Raises:
        WeightsError: ``weights_path`` is missing or does not fit.
    """
    return ResNetBackbone.with_weights(weights_path, name="resnet50", input_channels=input_channels)


@BACKBONES.register("resnet50_tiny")
def resnet50_tiny(input_channels: int = 3,
                  weights_path: str | os.PathLike | None = None) -> ResNetBackbone:
    """A narrow, shallow bottleneck ResNet for tests and smoke runs: stem 16, planes
    (8, 16, 32, 64) (features of 32, 64, 128, 256 channels, as ``res2net_tiny``), blocks
    (1, 2, 1, 1).

    Args and Raises: as ``resnet50``.
    """
    return ResNetBackbone.with_weights(
        weights_path, name="resnet50_tiny", input_channels=input_channels, stem_filters=16,
        stackwise_filters=(8, 16, 32, 64), stackwise_num_blocks=(1, 2, 1, 1))
