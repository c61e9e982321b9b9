"""Inpainting networks of SSInfNet (Fung et al., J Transl Med 19, 2021): the segmentation networks
with reconstruction heads added for the coach pre-training (spec sections 7.5, 7.6, 5.2).

Single model, ``InfNetInpainting`` (SSInfNet repo: InfNet_ResNet.py, "forward_inpainting"):
Inf-Net (spec 2) unchanged, plus five 3-channel heads. The reverse-attention chain still runs on
the 1-channel segmentation logits, so ``crop4``, ``crop3``, ``crop2`` below are those logits::

    R5 = up(tanh(tanh(ParDec.conv5_inpainting(conv4 features))))     (h/8, double tanh as-run)
    R4 = up(tanh(ra4.conv5_inpainting(stage features) + crop4))       (h/32, crop broadcast)
    R3 = up(tanh(ra3.conv4_inpainting(stage features) + crop3))       (h/16)
    R2 = up(tanh(ra2.conv4_inpainting(stage features) + crop2))       (h/8)
    RE = up(tanh(edge_conv4_inpainting(E)))                            (h/4)

Multi model, ``UNetInpainting`` (Inf_Net_UNet_Improved): the U-Net encoder, its segmentation
decoder and a second decoder ``up1_inpainting``..``up4_inpainting`` + ``out_inpainting`` (1x1,
64 -> input channels, bias) + tanh. Every segmentation layer keeps the name it has in ``InfNet``
or ``UNet``, so ``tfcovid.training.transfer.transfer_weights`` moves the pre-trained weights
into the segmentation network by name (spec 7.10).

Deliberate deviations from the reference code:

- Outputs are dicts: the segmentation logits under their usual keys plus ``RECONSTRUCTION_KEYS``
  (single) or "reconstruction" (multi, 6 channels: image then prior). The multi model therefore
  also runs its segmentation decoder in pre-training, where it gets no gradient.
- ``as_run=False`` applies tanh once on the partial-decoder head (spec 14, quirk 11).
- Every resize targets the input's size (as ``InfNet``); any registered backbone works (the
  reference uses ResNet-50; the Res2Net file of the SSInfNet repo cannot run this forward).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import keras
from keras import layers, ops

from tfcovid.models.base import TfcovidModel
from tfcovid.models.infnet.attention import EdgeAttention, ReverseAttention
from tfcovid.models.infnet.infnet import REVERSE_ATTENTION_STAGES, encode_features
from tfcovid.models.infnet.partial_decoder import PartialDecoder
from tfcovid.models.layers import (BilinearResize, ConvBN, resize_bilinear, spatial_size,
                                   torch_bias_initializer, torch_kernel_initializer)
from tfcovid.models.unet.unet import UNetConfig, decode, encode
from tfcovid.registry import BACKBONES, MODELS

SEGMENTATION_KEYS = ("lateral_5", "lateral_4", "lateral_3", "lateral_2", "edge")
RECONSTRUCTION_KEYS = ("reconstruction_5", "reconstruction_4", "reconstruction_3",
                       "reconstruction_2", "reconstruction_edge")
INFNET_HEADS = ("ParDec/conv5", "ra4/conv5", "ra3/conv4", "ra2/conv4", "edge/conv4")
"""Weight-path prefixes of Inf-Net's segmentation heads, the layers the paper's transfer leaves
fresh ("all weights except the last layer"): ``transfer_weights(..., skip=INFNET_HEADS)``."""


def _up(images, reference):
    """The partial decoder's upsampling: bilinear, align_corners=True, to the reference's size."""
    return resize_bilinear(images, spatial_size(reference), align_corners=True)


def _conv_with_bias(x, filters, name):
    """1x1 convolution with bias, PyTorch's default initialisers, float32 (``OutConv``)."""
    return layers.Conv2D(filters, 1, kernel_initializer=torch_kernel_initializer(),
                         bias_initializer=torch_bias_initializer(x.shape[-1]), dtype="float32",
                         name=name)(x)


@keras.saving.register_keras_serializable(package="tfcovid")
class InpaintingPartialDecoder(PartialDecoder):
    """``PartialDecoder`` that also returns ``conv5_inpainting`` (plain 1x1 convolution with
    bias) of the ``conv4`` features, the pre-activation R5 (spec 7.5).

    ``call`` heads both outputs on ``PartialDecoder.features``.

    Args:
        filters: int. Channels C of the inputs. Defaults to 32.
        num_classes: int. Segmentation logit channels. Defaults to 1.
        reconstruction_channels: int. Channels of the reconstruction. Defaults to 3.

    Returns:
        (logits, reconstruction): float32 (batch, h, w, num_classes) and float32
        (batch, h, w, reconstruction_channels), both before any activation.
    """

    def __init__(self, filters: int = 32, num_classes: int = 1, reconstruction_channels: int = 3,
                 **kwargs):
        super().__init__(filters, num_classes, **kwargs)
        self.reconstruction_channels = reconstruction_channels
        self.conv5_inpainting = keras.layers.Conv2D(
            reconstruction_channels, 1, kernel_initializer=torch_kernel_initializer(),
            bias_initializer=torch_bias_initializer(3 * filters), dtype="float32",
            name="conv5_inpainting")

    def build(self, deep_shape, middle_shape, shallow_shape):
        super().build(deep_shape, middle_shape, shallow_shape)
        self.conv5_inpainting.build((*shallow_shape[:-1], 3 * self.filters))

    def call(self, deep, middle, shallow, training=None):
        features = self.features(deep, middle, shallow, training=training)
        return self.conv5(features), self.conv5_inpainting(features)

    def compute_output_shape(self, deep_shape, middle_shape, shallow_shape):
        return ((*shallow_shape[:-1], self.num_classes),
                (*shallow_shape[:-1], self.reconstruction_channels))

    def get_config(self):
        return {**super().get_config(), "reconstruction_channels": self.reconstruction_channels}


@keras.saving.register_keras_serializable(package="tfcovid")
class InpaintingReverseAttention(ReverseAttention):
    """``ReverseAttention`` that also returns a ``ConvBN`` reconstruction head of the stage's
    last features, named like the logit head plus "_inpainting" (``conv5_inpainting`` at stride
    32, ``conv4_inpainting`` at strides 16 and 8; spec 7.5).

    ``call`` heads both outputs on ``ReverseAttention.body``. Arguments are those of
    ``ReverseAttention`` plus ``reconstruction_channels`` (int, defaults to 3).

    Returns:
        (residual_logits, reconstruction): float32 (batch, height, width, num_classes) and
        float32 (batch, height, width, reconstruction_channels), before the caller adds the
        coarse logits.
    """

    def __init__(self, filters: int, kernel_size: int, num_convs: int, head_kernel_size: int,
                 num_classes: int = 1, reconstruction_channels: int = 3, **kwargs):
        super().__init__(filters, kernel_size, num_convs, head_kernel_size, num_classes,
                         **kwargs)
        self.reconstruction_channels = reconstruction_channels
        self.head_inpainting = ConvBN(reconstruction_channels, head_kernel_size, dtype="float32",
                                      name=f"conv{num_convs + 2}_inpainting")

    def build(self, features_shape, coarse_logits_shape, edge_features_shape):
        super().build(features_shape, coarse_logits_shape, edge_features_shape)
        self.head_inpainting.build((*features_shape[:-1], self.filters))

    def call(self, features, coarse_logits, edge_features, training=None):
        x = self.body(features, coarse_logits, edge_features, training=training)
        return self.head(x, training=training), self.head_inpainting(x, training=training)

    def compute_output_shape(self, features_shape, coarse_logits_shape, edge_features_shape):
        return ((*features_shape[:-1], self.num_classes),
                (*features_shape[:-1], self.reconstruction_channels))

    def get_config(self):
        return {**super().get_config(), "reconstruction_channels": self.reconstruction_channels}


@keras.saving.register_keras_serializable(package="tfcovid")
class TanhResidual(keras.layers.Layer):
    """tanh(inputs + residual), the residual broadcast over channels (spec 7.5, R4..R2).

    Call args:
        inputs: tensor (batch, height, width, channels).
        residual: tensor (batch, height, width, 1), e.g. the 1-channel crop logits.

    Returns:
        Tensor (batch, height, width, channels) in [-1, 1].
    """

    def call(self, inputs, residual):
        return ops.tanh(inputs + ops.cast(residual, inputs.dtype))

    def compute_output_shape(self, inputs_shape, residual_shape):
        return inputs_shape


@keras.saving.register_keras_serializable(package="tfcovid")
class InfNetInpainting(TfcovidModel):
    """Inf-Net with SSInfNet's five image-reconstruction heads (spec 7.5).

    Args:
        backbone: keras.Model. Maps images (batch, height, width, channels) to features "s4",
            "s8", "s16", "s32".
        channels: int. RFB and partial-decoder channels. Defaults to 32.
        reverse_attention_channels: (int, int, int). Stage channels at strides 32, 16, 8.
            Defaults to (256, 64, 64).
        edge_channels: int. Channels of the edge feature E. Defaults to 64.
        reconstruction_channels: int. Channels of each reconstruction. Defaults to 3.
        as_run: bool. True applies tanh twice on R5, as the reference does. Defaults to True.
        **kwargs: passed to ``keras.Model`` (name, trainable).

    Call returns:
        dict of float32 tensors at the input size: the ``InfNet`` logits "lateral_5" ..
        "lateral_2", "edge" (batch, height, width, 1) and the reconstructions
        "reconstruction_5", "reconstruction_4", "reconstruction_3", "reconstruction_2",
        "reconstruction_edge" (batch, height, width, reconstruction_channels) in [-1, 1]; all
        five reconstruct the (normalised) input image.

    Example:

    >>> import numpy as np
    >>> from tfcovid.models.backbones.res2net import res2net_tiny
    >>> model = InfNetInpainting(res2net_tiny(), channels=8,
    ...                          reverse_attention_channels=(16, 8, 8), edge_channels=8)
    >>> tuple(model(np.zeros((2, 64, 96, 3)))["reconstruction_edge"].shape)
    (2, 64, 96, 3)

    Reference: Fung et al., J Transl Med 19:318, 2021; spec sections 2, 7.5.
    """

    nested_keys = ("backbone",)

    def __init__(self, backbone: keras.Model, channels: int = 32,
                 reverse_attention_channels=(256, 64, 64), edge_channels: int = 64,
                 reconstruction_channels: int = 3, as_run: bool = True, **kwargs):
        reverse_attention_channels = tuple(reverse_attention_channels)
        if len(reverse_attention_channels) != 3:
            raise ValueError("reverse_attention_channels must hold 3 ints (strides 32, 16, 8). "
                             f"Received: reverse_attention_channels={reverse_attention_channels}")
        inputs, (x1, x2, x3, x4), (r2, r3, r4) = encode_features(backbone, channels)
        global_logits, global_image = InpaintingPartialDecoder(
            channels, 1, reconstruction_channels, name="ParDec")(r4, r3, r2)
        edge_features, edge_logits = EdgeAttention(edge_channels, 1, name="edge")(x1)
        edge_image = ConvBN(reconstruction_channels, 3, dtype="float32",
                            name="edge_conv4_inpainting")(edge_features)

        def resize(images, name):
            return BilinearResize(dtype="float32", name=name)(images, inputs)

        global_image = layers.Activation("tanh", dtype="float32", name="ParDec_tanh")(global_image)
        if as_run:
            global_image = layers.Activation("tanh", dtype="float32",
                                             name="ParDec_tanh_again")(global_image)
        outputs = {"lateral_5": resize(global_logits, "lateral_5"),
                   "reconstruction_5": resize(global_image, "reconstruction_5")}
        logits = global_logits
        for (name, kernel_size, num_convs, head_kernel_size), feature, filters in zip(
                REVERSE_ATTENTION_STAGES, (x4, x3, x2), reverse_attention_channels):
            crop = BilinearResize(dtype="float32", name=f"{name}_crop")(logits, feature)
            residual, image = InpaintingReverseAttention(
                filters, kernel_size, num_convs, head_kernel_size, 1, reconstruction_channels,
                name=name)(feature, crop, edge_features)
            logits = layers.Add(dtype="float32", name=f"{name}_residual")([residual, crop])
            image = TanhResidual(dtype="float32", name=f"{name}_tanh")(image, crop)
            level = name[-1]
            outputs[f"lateral_{level}"] = resize(logits, f"lateral_{level}")
            outputs[f"reconstruction_{level}"] = resize(image, f"reconstruction_{level}")
        outputs["edge"] = resize(edge_logits, "lateral_edge")
        edge_image = layers.Activation("tanh", dtype="float32", name="edge_tanh")(edge_image)
        outputs["reconstruction_edge"] = resize(edge_image, "reconstruction_edge")
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.backbone, self.channels = backbone, channels
        self.reverse_attention_channels = reverse_attention_channels
        self.edge_channels, self.reconstruction_channels = edge_channels, reconstruction_channels
        self.as_run = as_run

    def get_config(self):
        return {**super().get_config(), "channels": self.channels,
                "reverse_attention_channels": self.reverse_attention_channels,
                "edge_channels": self.edge_channels,
                "reconstruction_channels": self.reconstruction_channels, "as_run": self.as_run}


@dataclasses.dataclass(frozen=True)
class InfNetInpaintingConfig:
    """Settings of the single inpainting Inf-Net; defaults are SSInfNet's (spec 7.5, 12).

    Attributes:
        backbone: str. A name in ``tfcovid.registry.BACKBONES`` (ResNet-50 in the reference).
        backbone_weights: str or None. Local ``.weights.h5`` file for the backbone.
        input_channels: int. Channels of the input images.
        channels: int. RFB and partial-decoder channels.
        reverse_attention_channels: (int, int, int). Stage channels at strides 32, 16, 8.
        edge_channels: int. Channels of the edge feature.
        reconstruction_channels: int. Channels of each reconstruction head.
        as_run: bool. Double tanh on the partial-decoder head, as the reference.
    """

    backbone: str = "resnet50"
    backbone_weights: str | None = None
    input_channels: int = 3
    channels: int = 32
    reverse_attention_channels: tuple[int, int, int] = (256, 64, 64)
    edge_channels: int = 64
    reconstruction_channels: int = 3
    as_run: bool = True

    @classmethod
    def tiny(cls, **overrides) -> InfNetInpaintingConfig:
        """A narrow model on ``res2net_tiny``, the widths of ``InfNetConfig.tiny()``.

        Args:
            **overrides: fields replacing the tiny values.
        """
        values = {"backbone": "res2net_tiny", "channels": 8,
                  "reverse_attention_channels": (16, 8, 8), "edge_channels": 8}
        return cls(**{**values, **overrides})


@MODELS.register("infnet_inpainting", config=InfNetInpaintingConfig)
def build_infnet_inpainting(cfg: InfNetInpaintingConfig) -> InfNetInpainting:
    """Single inpainting Inf-Net of SSInfNet; spec section 7.5."""
    backbone = BACKBONES.build(cfg.backbone, input_channels=cfg.input_channels,
                               weights_path=cfg.backbone_weights)
    return InfNetInpainting(backbone, channels=cfg.channels,
                            reverse_attention_channels=cfg.reverse_attention_channels,
                            edge_channels=cfg.edge_channels,
                            reconstruction_channels=cfg.reconstruction_channels,
                            as_run=cfg.as_run, name="infnet_inpainting")


@keras.saving.register_keras_serializable(package="tfcovid")
class UNetInpainting(TfcovidModel):
    """U-Net with the improved U-Net's inpainting decoder (spec 5.2, 7.6).

    Args:
        input_channels: int. Input channels (CT 3 + prior 3); also the reconstruction's.
            Defaults to 6.
        num_classes: int. Segmentation logit channels. Defaults to 3.
        variant: "baseline" or "improved" (the reference's). Defaults to "improved".
        stackwise_filters: (int, int, int, int). Channels of inc, down1, down2, down3.
            Defaults to (64, 128, 256, 512).
        **kwargs: passed to ``keras.Model`` (name, trainable).

    Call returns:
        dict of float32 tensors at the input size: "logits" (batch, height, width,
        num_classes), as ``UNet``; "reconstruction" (batch, height, width, input_channels) in
        [-1, 1], the image channels then the prior channels.

    Example:

    >>> import numpy as np
    >>> model = UNetInpainting(stackwise_filters=(4, 8, 8, 16))
    >>> tuple(model(np.zeros((2, 48, 80, 6)))["reconstruction"].shape)
    (2, 48, 80, 6)

    Reference: Fung et al., J Transl Med 19:318, 2021; spec sections 5.2, 7.6.
    """

    def __init__(self, input_channels: int = 6, num_classes: int = 3,
                 variant: Literal["baseline", "improved"] = "improved",
                 stackwise_filters=(64, 128, 256, 512), **kwargs):
        stackwise_filters = tuple(stackwise_filters)
        inputs = keras.Input(shape=(None, None, input_channels), name="images")
        x5, skips = encode(inputs, variant, stackwise_filters)
        logits = _conv_with_bias(decode(x5, skips, stackwise_filters), num_classes, "outc_conv")
        x = decode(x5, skips, stackwise_filters, suffix="_inpainting")
        x = _conv_with_bias(x, input_channels, "out_inpainting_conv")
        reconstruction = layers.Activation("tanh", dtype="float32", name="out_inpainting_tanh")(x)
        super().__init__(inputs=inputs, outputs={"logits": logits,
                                                 "reconstruction": reconstruction}, **kwargs)
        self.input_channels, self.num_classes = input_channels, num_classes
        self.variant, self.stackwise_filters = variant, stackwise_filters

    def get_config(self):
        return {**super().get_config(), "input_channels": self.input_channels,
                "num_classes": self.num_classes, "variant": self.variant,
                "stackwise_filters": self.stackwise_filters}


@dataclasses.dataclass(frozen=True)
class UNetInpaintingConfig(UNetConfig):
    """Settings of the multi inpainting U-Net: ``UNetConfig``'s, with SSInfNet's "improved"
    variant by default (spec 5.2, 7.6); ``tiny()`` has ``UNetConfig.tiny()``'s widths."""

    variant: Literal["baseline", "improved"] = "improved"


@MODELS.register("infnet_multiclass_inpainting", config=UNetInpaintingConfig)
def build_unet_inpainting(cfg: UNetInpaintingConfig) -> UNetInpainting:
    """Improved U-Net with its inpainting decoder (SSInfNet multi); spec sections 5.2, 7.6."""
    return UNetInpainting(input_channels=cfg.input_channels, num_classes=cfg.num_classes,
                          variant=cfg.variant, stackwise_filters=cfg.stackwise_filters,
                          name="unet_multiclass_inpainting")
