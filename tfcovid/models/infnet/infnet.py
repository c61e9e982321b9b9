"""Single-class Inf-Net (Fan et al., "Inf-Net: Automatic COVID-19 Lung Infection Segmentation
from CT Images", IEEE TMI 39(8), 2020), as in the Inf-Net repo's InfNet_Res2Net.py (spec
section 2).

Data flow, for an input of height h and width w (multiples of 32)::

    backbone -> s4 (x1), s8 (x2), s16 (x3), s32 (x4)
    x2, x3, x4 -> RFB (rfb2_1, rfb3_1, rfb4_1) -> r2, r3, r4 -> PPD (ParDec) -> S_g   (h/8)
    x1 -> edge branch -> E, edge logits                                             (h/4)
    M4 = ra4(x4, S_g at h/32, E) + S_g at h/32                                       (h/32)
    M3 = ra3(x3, M4 at h/16, E) + M4 at h/16                                         (h/16)
    M2 = ra2(x2, M3 at h/8, E) + M3 at h/8                                           (h/8)
    outputs: lateral_5 = S_g, lateral_4 = M4, lateral_3 = M3, lateral_2 = M2, edge,
             each resized to (h, w)

Deliberate deviations from the reference code:

- Outputs are a dict keyed "lateral_5", "lateral_4", "lateral_3", "lateral_2" (the final
  prediction) and "edge", not a tuple; ``predict`` returns "lateral_2" alone.
- Every resize targets an explicit size (the next feature's or the input's) rather than a scale
  factor; identical for inputs that are multiples of 32 (spec 0.2), defined for other sizes.
- The backbone has no 2048 -> 1000 classifier, so the model has 31,072,721 trainable parameters
  with the Res2Net-50 backbone instead of the 33,121,721 usually quoted (spec 2.8).
- Logit heads (PPD ``conv5``, the stage heads, the edge head), the residual additions and the
  resizes of logits run in float32, so under mixed precision every output is float32.
- The backbone starts from its own initialisation unless ``backbone_weights`` names a local
  ``.weights.h5`` file; the reference constructor always loads ImageNet weights (spec 1.1).
- ``reverse_attention_channels`` and ``edge_channels`` (fixed at 256/64/64 and 64 in the
  reference) are arguments, so a tiny model exists for tests.
"""

from __future__ import annotations

import dataclasses

import keras

from tfcovid.models.base import TfcovidModel
from tfcovid.models.infnet.attention import EdgeAttention, ReverseAttention
from tfcovid.models.infnet.partial_decoder import PartialDecoder
from tfcovid.models.infnet.rfb import ReceptiveFieldBlock
from tfcovid.models.layers import BilinearResize
from tfcovid.registry import BACKBONES, MODELS

OUTPUT_KEYS = ("lateral_5", "lateral_4", "lateral_3", "lateral_2", "edge")


REVERSE_ATTENTION_STAGES = (("ra4", 5, 3, 1), ("ra3", 3, 2, 3), ("ra2", 3, 2, 3))
"""(name, kernel size, convolutions, head kernel size) of the reverse-attention stages on the
backbone features at strides 32, 16 and 8 (spec 2.4)."""


def encode_features(backbone: keras.Model, channels: int):
    """Inf-Net's encoder on a new ``images`` input: the backbone and the three RFB blocks.

    Args:
        backbone: keras.Model mapping images to features "s4", "s8", "s16", "s32".
        channels: int. Channels of the RFB outputs.

    Returns:
        (inputs, (x1, x2, x3, x4), (r2, r3, r4)): the Keras input, the backbone features at
        strides 4, 8, 16, 32, and the RFB features at strides 8, 16, 32.
    """
    inputs = keras.Input(shape=(None, None, backbone.input_shape[-1]), name="images")
    features = backbone(inputs)
    x1, x2, x3, x4 = (features[key] for key in ("s4", "s8", "s16", "s32"))
    fields = tuple(ReceptiveFieldBlock(channels, name=f"rfb{level}_1")(feature)
                   for level, feature in ((2, x2), (3, x3), (4, x4)))
    return inputs, (x1, x2, x3, x4), fields


@keras.saving.register_keras_serializable(package="tfcovid")
class InfNet(TfcovidModel):
    """Inf-Net: backbone, RFBs, parallel partial decoder, edge attention, reverse attention.

    Args:
        backbone: keras.Model. Maps images (batch, height, width, channels) to a dict of
            features "s4", "s8", "s16", "s32" at strides 4 to 32.
        channels: int. Channels of the RFB outputs and the partial decoder. Defaults to 32.
        num_classes: int. Logit channels; the reverse attention broadcasts a single-channel
            map, so only 1 is accepted (as in the reference). Defaults to 1.
        reverse_attention_channels: (int, int, int). Channels inside the reverse-attention
            stages at strides 32, 16, 8. Defaults to (256, 64, 64).
        edge_channels: int. Channels of the edge feature E. Defaults to 64.
        **kwargs: passed to ``keras.Model`` (name, trainable).

    Call returns:
        dict of float32 logits (batch, height, width, num_classes) at the input resolution:
        "lateral_5" (partial decoder), "lateral_4", "lateral_3", "lateral_2" (reverse-attention
        stages; "lateral_2" is the prediction) and "edge". ``predict`` returns "lateral_2";
        sigmoid gives the infection probability.

    Example:

    >>> import numpy as np
    >>> from tfcovid.models.backbones.res2net import res2net_tiny
    >>> model = InfNet(res2net_tiny(), channels=8, reverse_attention_channels=(16, 8, 8),
    ...                edge_channels=8)
    >>> outputs = model(np.zeros((2, 64, 96, 3)))
    >>> list(outputs), tuple(outputs["lateral_2"].shape)
    (['lateral_5', 'lateral_4', 'lateral_3', 'lateral_2', 'edge'], (2, 64, 96, 1))

    Reference: Fan et al., IEEE TMI 39(8):2626-2637, 2020; spec section 2.
    """

    nested_keys = ("backbone",)

    def __init__(self, backbone: keras.Model, channels: int = 32, num_classes: int = 1,
                 reverse_attention_channels=(256, 64, 64), edge_channels: int = 64, **kwargs):
        reverse_attention_channels = tuple(reverse_attention_channels)
        if num_classes != 1:
            raise ValueError("InfNet's reverse attention broadcasts a single-channel map "
                             "(spec 2.4); num_classes must be 1. "
                             f"Received: num_classes={num_classes}")
        if len(reverse_attention_channels) != 3:
            raise ValueError("reverse_attention_channels must hold 3 ints (strides 32, 16, 8). "
                             f"Received: reverse_attention_channels={reverse_attention_channels}")
        inputs, (x1, x2, x3, x4), (r2, r3, r4) = encode_features(backbone, channels)
        global_logits = PartialDecoder(channels, num_classes, name="ParDec")(r4, r3, r2)
        edge_features, edge_logits = EdgeAttention(edge_channels, num_classes, name="edge")(x1)

        def resize(logits, reference, name):
            return BilinearResize(dtype="float32", name=name)(logits, reference)

        logits, stage_logits = global_logits, {}
        for (name, kernel_size, num_convs, head_kernel_size), feature, filters in zip(
                REVERSE_ATTENTION_STAGES, (x4, x3, x2), reverse_attention_channels):
            crop = resize(logits, feature, f"{name}_crop")
            residual = ReverseAttention(filters, kernel_size, num_convs, head_kernel_size,
                                        num_classes, name=name)(feature, crop, edge_features)
            logits = keras.layers.Add(dtype="float32", name=f"{name}_residual")([residual, crop])
            stage_logits[name] = logits
        outputs = {"lateral_5": resize(global_logits, inputs, "lateral_5"),
                   "lateral_4": resize(stage_logits["ra4"], inputs, "lateral_4"),
                   "lateral_3": resize(stage_logits["ra3"], inputs, "lateral_3"),
                   "lateral_2": resize(stage_logits["ra2"], inputs, "lateral_2"),
                   "edge": resize(edge_logits, inputs, "lateral_edge")}
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.backbone, self.channels, self.num_classes = backbone, channels, num_classes
        self.reverse_attention_channels = reverse_attention_channels
        self.edge_channels = edge_channels

    def predict_step(self, data):
        images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self(images, training=False)["lateral_2"]

    def get_config(self):
        return {**super().get_config(), "channels": self.channels,
                "num_classes": self.num_classes,
                "reverse_attention_channels": self.reverse_attention_channels,
                "edge_channels": self.edge_channels}


@dataclasses.dataclass(frozen=True)
class InfNetConfig:
    """Settings of the single-class Inf-Net; defaults are the reference's (spec sections 2, 12).

    Attributes:
        backbone: str. A name in ``tfcovid.registry.BACKBONES``.
        backbone_weights: str or None. Local ``.weights.h5`` file for the backbone.
        input_channels: int. Channels of the input images.
        channels: int. RFB and partial-decoder channels.
        num_classes: int. Logit channels (1).
        reverse_attention_channels: (int, int, int). Reverse-attention stage channels at
            strides 32, 16, 8.
        edge_channels: int. Channels of the edge feature.
    """

    backbone: str = "res2net50_v1b_26w_4s"
    backbone_weights: str | None = None
    input_channels: int = 3
    channels: int = 32
    num_classes: int = 1
    reverse_attention_channels: tuple[int, int, int] = (256, 64, 64)
    edge_channels: int = 64

    @classmethod
    def tiny(cls, **overrides) -> InfNetConfig:
        """A narrow Inf-Net on ``res2net_tiny`` for tests and smoke runs (about 0.2 M parameters).

        Args:
            **overrides: fields replacing the tiny values.
        """
        values = {"backbone": "res2net_tiny", "channels": 8,
                  "reverse_attention_channels": (16, 8, 8), "edge_channels": 8}
        return cls(**{**values, **overrides})


@MODELS.register("infnet", config=InfNetConfig)
def build_infnet(cfg: InfNetConfig) -> InfNet:
    """Single-class Inf-Net (Fan et al., IEEE TMI 2020); spec section 2."""
    backbone = BACKBONES.build(cfg.backbone, input_channels=cfg.input_channels,
                               weights_path=cfg.backbone_weights)
    return InfNet(backbone, channels=cfg.channels, num_classes=cfg.num_classes,
                  reverse_attention_channels=cfg.reverse_attention_channels,
                  edge_channels=cfg.edge_channels, name="infnet")
