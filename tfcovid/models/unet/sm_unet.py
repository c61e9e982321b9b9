"""U-Net with a ResNeXt50 (32x4d) encoder from segmentation-models 1.0.1 (qubvel), the encoder of
StichNet's "U-Net + pseudo-labels" baseline (StichNet spec section 7.3).

segmentation-models is imported on first build, not with this module: it prints a banner at
import (swallowed here) and picks its Keras from ``SM_FRAMEWORK``, which is set to "tf.keras"
unless already set. With TensorFlow 2.21 and Keras 3 installed, ``tf.keras`` is Keras 3 (also
when tf_keras is installed), and the library builds a Keras 3 functional model that nests
inside ours, trains, and saves. Under ``TF_USE_LEGACY_KERAS=1`` ``tf.keras`` is tf_keras
(Keras 2): the library then builds a tf_keras model that cannot be called on Keras 3 tensors,
and the build raises ``ConfigError``.

The library's own ``.keras`` files cannot be loaded: its grouped convolutions slice channels
with ``Lambda`` layers, which Keras 3 refuses to deserialise in safe mode. ``UNetResNeXt50``
therefore saves its constructor arguments only (``TfcovidModel``) and rebuilds the graph when
loaded; the weights travel by layer order.

Library choices kept as they are: the input passes a batch norm without scale ("bn_data"), batch
norms use momentum 0.99 and epsilon 2e-5, grouped convolutions are 32 separate convolutions
(slow on CPU), the decoder upsamples by nearest neighbour, and inputs must be multiples of 32.
Deviations: ``encoder_weights=None`` always (no downloads; ``weights_path`` loads a local file
saved from this model), and the output is a dict with float32 logits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os

import keras

from tfcovid.errors import ConfigError
from tfcovid.models.base import TfcovidModel, check_weights_path
from tfcovid.registry import MODELS


def _segmentation_models():
    """Imports segmentation_models on tf.keras, without its import-time banner."""
    os.environ.setdefault("SM_FRAMEWORK", "tf.keras")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import segmentation_models
    except ImportError as error:
        raise ConfigError("model.name: unet_resnext50 needs segmentation-models 1.0.1; "
                          "pip install segmentation-models==1.0.1") from error
    return segmentation_models


@keras.saving.register_keras_serializable(package="tfcovid")
class UNetResNeXt50(TfcovidModel):
    """segmentation-models ``Unet("resnext50")``, randomly initialised, returning float32 logits.

    Args:
        input_channels: int. Channels of the input images. Defaults to 3.
        num_classes: int. Logit channels: 0 background, 1 ground-glass opacity,
            2 consolidation. Defaults to 3.
        decoder_filters: tuple of int. Channels of the decoder blocks at strides 16 to 1.
            Defaults to (256, 128, 64, 32, 16), the library's.
        **kwargs: passed to ``keras.Model`` (name, trainable).

    Call returns:
        dict with "logits": float32 (batch, height, width, num_classes), for inputs
        (batch, height, width, input_channels) with height and width multiples of 32.

    Raises:
        ConfigError: segmentation-models is missing, or built a tf_keras model.
        ValueError: ``decoder_filters`` does not hold 5 ints.

    Reference: Xie et al., "Aggregated Residual Transformations for Deep Neural Networks",
    CVPR 2017; segmentation-models 1.0.1 (github.com/qubvel/segmentation_models).
    """

    def __init__(self, input_channels: int = 3, num_classes: int = 3,
                 decoder_filters=(256, 128, 64, 32, 16), **kwargs):
        decoder_filters = tuple(decoder_filters)
        if len(decoder_filters) != 5:
            raise ValueError("decoder_filters must hold 5 ints (strides 16 to 1). "
                             f"Received: decoder_filters={decoder_filters}")
        unet = _segmentation_models().Unet(
            "resnext50", input_shape=(None, None, input_channels), classes=num_classes,
            activation="linear", encoder_weights=None, decoder_filters=decoder_filters)
        if not isinstance(unet, keras.Model):
            raise ConfigError(f"model.name: unet_resnext50: segmentation-models built a "
                              f"{type(unet).__module__} model, not a Keras 3 one; unset "
                              "TF_USE_LEGACY_KERAS so that tf.keras is Keras 3")
        inputs = keras.Input(shape=(None, None, input_channels), name="images")
        logits = keras.layers.Activation("linear", dtype="float32", name="logits")(unet(inputs))
        super().__init__(inputs=inputs, outputs={"logits": logits}, **kwargs)
        self.input_channels, self.num_classes = input_channels, num_classes
        self.decoder_filters = decoder_filters

    def predict_step(self, data):
        images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self(images, training=False)["logits"]

    def get_config(self):
        return {**super().get_config(), "input_channels": self.input_channels,
                "num_classes": self.num_classes, "decoder_filters": self.decoder_filters}


@dataclasses.dataclass(frozen=True)
class UNetResNeXt50Config:
    """Settings of the ResNeXt50 U-Net (StichNet spec 7.3).

    Attributes:
        weights_path: str or None. Local ``.weights.h5`` file saved from a model of the same
            settings.
        input_channels: int. Input channels.
        num_classes: int. Logit channels (3: background, GGO, consolidation).
        decoder_filters: tuple of int. Decoder block channels.
    """

    weights_path: str | None = None
    input_channels: int = 3
    num_classes: int = 3
    decoder_filters: tuple[int, ...] = (256, 128, 64, 32, 16)


@MODELS.register("unet_resnext50", config=UNetResNeXt50Config)
def build_unet_resnext50(cfg: UNetResNeXt50Config) -> UNetResNeXt50:
    """segmentation-models U-Net with a ResNeXt50 encoder; StichNet spec section 7.3."""
    if cfg.weights_path is not None:
        check_weights_path(cfg.weights_path)  # fail before the (slow) graph is built
    model = UNetResNeXt50(input_channels=cfg.input_channels, num_classes=cfg.num_classes,
                          decoder_filters=cfg.decoder_filters, name="unet_resnext50")
    if cfg.weights_path is not None:
        model.load_weights_file(cfg.weights_path)
    return model
