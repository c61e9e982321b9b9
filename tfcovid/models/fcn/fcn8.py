"""FCN-8s on VGG16 (Long et al., CVPR 2015), as SSInfNet's baseline (SSInfNet repo:
InfNet/fcn8.py; spec section 5.8).

Data flow, for an input of height h and width w (multiples of 32)::

    backbone -> s8 (pool3), s16 (pool4), s32 (pool5)
    s = bn1(relu(deconv1(s32)) + s16)                       (h/16, channels of s16)
    s = bn2(relu(deconv2(s)) + s8)                          (h/8, channels of s8)
    s = bn3(relu(deconv3(s))), bn4(...), bn5(...)           (h/4, h/2, h; decoder_filters)
    logits = classifier(s), 1x1 convolution with bias       (h)

Each ``deconv`` is PyTorch's ``ConvTranspose2d(3, stride=2, padding=1, output_padding=1)``,
which doubles the size. Keras's "same" transposed convolution places its output one pixel
off from PyTorch's, so ours runs "valid" (size ``2 in + 1``) and crops the first row and column:
output pixel ``o`` then sums input pixel ``i`` through kernel tap ``o + 1 - 2 i`` as in PyTorch.

Deviations from the reference code: the output is a dict ``{"logits": ...}`` with float32
logits; ``decoder_filters`` (fixed at 128, 64, 32) is an argument, so a tiny model exists; the
backbone starts from its own initialisation unless ``backbone_weights`` names a local file (the
reference always loads torchvision's ImageNet weights). In the SSInfNet scripts FCN8s sees the CT
image alone (3 channels); a 6-channel stem (image + prior) is available through
``input_channels``.
"""

from __future__ import annotations

import dataclasses

import keras
from keras import layers

from tfcovid.models.base import TfcovidModel
from tfcovid.models.batch_norm import BatchNormalization
from tfcovid.models.layers import torch_bias_initializer, torch_kernel_initializer
from tfcovid.registry import BACKBONES, MODELS


def _deconv(x, filters, name):
    """PyTorch ConvTranspose2d(3, stride 2, padding 1, output_padding 1): output 2x the size."""
    fan_in = filters * 9  # PyTorch computes a transposed kernel's fan-in over its output channels
    x = layers.Conv2DTranspose(filters, 3, strides=2, padding="valid",
                               kernel_initializer=torch_kernel_initializer(),
                               bias_initializer=torch_bias_initializer(fan_in), name=name)(x)
    return layers.Cropping2D(((1, 0), (1, 0)), name=f"{name}_crop")(x)


def _bn(x, name):
    return BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)(x)  # PyTorch 0.1


@keras.saving.register_keras_serializable(package="tfcovid")
class FCN8(TfcovidModel):
    """FCN-8s decoder over a backbone's stride-8, -16 and -32 features (spec 5.8).

    Args:
        backbone: keras.Model. Maps images (batch, height, width, channels) to a dict with
            "s8", "s16", "s32" features (``tfcovid.models.backbones.vgg``).
        num_classes: int. Logit channels: 0 background, 1 ground-glass opacity,
            2 consolidation. Defaults to 3.
        decoder_filters: (int, int, int). Channels of deconv3, deconv4, deconv5 (strides 4,
            2, 1). Defaults to (128, 64, 32).
        **kwargs: passed to ``keras.Model`` (name, trainable).

    Call returns:
        dict with "logits": float32 (batch, height, width, num_classes), for inputs whose
        height and width are multiples of 32 (the skip sums need matching sizes, as in the
        reference). ``predict`` returns the logits.

    Example:

    >>> import numpy as np
    >>> from tfcovid.models.backbones.vgg import vgg16_tiny
    >>> model = FCN8(vgg16_tiny(), decoder_filters=(8, 8, 4))
    >>> tuple(model(np.zeros((2, 64, 96, 3)))["logits"].shape)
    (2, 64, 96, 3)

    Reference: Long, Shelhamer and Darrell, "Fully Convolutional Networks for Semantic
    Segmentation", CVPR 2015; spec section 5.8.
    """

    nested_keys = ("backbone",)

    def __init__(self, backbone: keras.Model, num_classes: int = 3,
                 decoder_filters=(128, 64, 32), **kwargs):
        decoder_filters = tuple(decoder_filters)
        if len(decoder_filters) != 3:
            raise ValueError("decoder_filters must hold 3 ints (deconv3, deconv4, deconv5). "
                             f"Received: decoder_filters={decoder_filters}")
        inputs = keras.Input(shape=(None, None, backbone.input_shape[-1]), name="images")
        features = backbone(inputs)
        x = features["s32"]
        for index, key in ((1, "s16"), (2, "s8")):
            x = layers.ReLU(name=f"relu{index}")(_deconv(x, features[key].shape[-1],
                                                         f"deconv{index}"))
            x = _bn(layers.Add(name=f"add{index}")([x, features[key]]), f"bn{index}")
        for index, filters in enumerate(decoder_filters, start=3):
            x = layers.ReLU(name=f"relu{index}")(_deconv(x, filters, f"deconv{index}"))
            x = _bn(x, f"bn{index}")
        logits = layers.Conv2D(num_classes, 1, kernel_initializer=torch_kernel_initializer(),
                               bias_initializer=torch_bias_initializer(x.shape[-1]),
                               dtype="float32", name="classifier")(x)
        super().__init__(inputs=inputs, outputs={"logits": logits}, **kwargs)
        self.backbone, self.num_classes = backbone, num_classes
        self.decoder_filters = decoder_filters

    def predict_step(self, data):
        images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self(images, training=False)["logits"]

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "decoder_filters": self.decoder_filters}


@dataclasses.dataclass(frozen=True)
class FCN8Config:
    """Settings of FCN-8s; defaults are the SSInfNet scripts' (spec 5.7, 5.8).

    Attributes:
        backbone: str. A name in ``tfcovid.registry.BACKBONES`` with "s8", "s16", "s32" taps.
        backbone_weights: str or None. Local ``.weights.h5`` file of a 3-channel backbone; its
            first kernel is tiled for other ``input_channels``.
        input_channels: int. Input channels (3: CT image only, as SSInfNet runs it).
        num_classes: int. Logit channels (3: background, GGO, consolidation).
        decoder_filters: (int, int, int). Channels of deconv3-5.
    """

    backbone: str = "vgg16"
    backbone_weights: str | None = None
    input_channels: int = 3
    num_classes: int = 3
    decoder_filters: tuple[int, int, int] = (128, 64, 32)

    @classmethod
    def tiny(cls, **overrides) -> FCN8Config:
        """A narrow FCN-8s on ``vgg16_tiny`` for tests and smoke runs (about 18 k parameters).

        Args:
            **overrides: fields replacing the tiny values.
        """
        return cls(**{"backbone": "vgg16_tiny", "decoder_filters": (8, 8, 4), **overrides})


@MODELS.register("fcn8_vgg16", config=FCN8Config)
def build_fcn8(cfg: FCN8Config) -> FCN8:
    """FCN-8s on VGG16 (Long et al., CVPR 2015), SSInfNet's baseline; spec section 5.8."""
    backbone = BACKBONES.build(cfg.backbone, input_channels=cfg.input_channels,
                               weights_path=cfg.backbone_weights)
    return FCN8(backbone, num_classes=cfg.num_classes, decoder_filters=cfg.decoder_filters,
                name="fcn8_vgg16")
