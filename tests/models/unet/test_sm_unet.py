"""segmentation-models ResNeXt50 U-Net: Keras 3 model, logits, parameter count, saving, a step.

Building the ResNeXt50 graph takes about 5 s on 2 CPU cores (its grouped convolutions are 32
separate convolutions each), so the model is built once per module and the tests that rebuild
it are marked slow.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfcovid.models
from tfcovid.errors import ConfigError, WeightsError
from tfcovid.models.unet import UNetResNeXt50, sm_unet
from tests.models import checks


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return tfcovid.models.build("unet_resnext50", input_channels=6)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).normal(size=(2, 64, 96, 6)).astype("float32")


def count(weights):
    return sum(int(np.prod(weight.shape)) for weight in weights)


def test_a_keras_3_model_with_float32_logits_at_the_input_size(model, images):
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    assert len(nested) == 1 and nested[0].get_layer("final_conv").kernel.shape == (3, 3, 16, 3)
    logits = model(images)["logits"]
    assert tuple(logits.shape) == (2, 64, 96, 3) and logits.dtype == tf.float32
    assert np.isfinite(logits.numpy()).all()


def test_parameter_count_by_hand(model):
    # torchvision resnext50_32x4d: 25,028,904 parameters, of which the classifier is
    # 2048 * 1000 + 1000; trainable BN here = gamma, beta as in PyTorch
    encoder = 25_028_904 - (2048 * 1000 + 1000)
    stem = 7 * 7 * 3 * 64 + 3  # 3 more input channels; "bn_data" learns only a beta per channel
    # decoder blocks: (upsampled + skip channels -> filters), two 3x3 conv + BN, no bias
    blocks = [(2048 + 1024, 256), (256 + 512, 128), (128 + 256, 64), (64 + 64, 32), (32, 16)]
    decoder = sum(9 * a * b + 9 * b * b + 4 * b for a, b in blocks)
    head = 9 * 16 * 3 + 3  # final 3x3 convolution with bias
    assert count(model.trainable_weights) == encoder + 3 + stem + decoder + head


def test_legacy_keras_models_are_refused(monkeypatch):
    class LegacyUnet:  # what segmentation-models returns when tf.keras is tf_keras

        @staticmethod
        def Unet(*args, **kwargs):
            return object()

    monkeypatch.setattr(sm_unet, "_segmentation_models", lambda: LegacyUnet)
    with pytest.raises(ConfigError, match=r"^model\.name: unet_resnext50: segmentation-models "
                       r"built a builtins model, not a Keras 3 one; unset TF_USE_LEGACY_KERAS"):
        UNetResNeXt50()


def test_a_missing_weights_file_fails_before_the_build(tmp_path):
    with pytest.raises(WeightsError, match=r"absent\.weights\.h5: no such weights file$"):
        tfcovid.models.build("unet_resnext50", weights_path=str(tmp_path / "absent.weights.h5"))


def test_invalid_decoder_filters_echo_the_values():
    with pytest.raises(ValueError, match=r"Received: decoder_filters=\(16, 8\)"):
        UNetResNeXt50(decoder_filters=(16, 8))


@pytest.mark.slow
def test_keras_file_save_and_load(model, images, tmp_path):
    # loading rebuilds from the config: segmentation-models' Lambda layers are never unpickled
    checks.assert_keras_file_round_trip(model, images, tmp_path / "unet_resnext50.keras")


@pytest.mark.slow
def test_a_gradient_step_changes_weights_and_gives_a_finite_loss(model, images):
    labels = np.random.default_rng(2).integers(0, 3, size=(2, 64, 96))
    onehot = np.eye(3, dtype="float32")[labels]
    before = [w.numpy().copy() for w in model.trainable_weights]
    with tf.GradientTape() as tape:
        logits = model(images, training=True)["logits"]
        loss = keras.ops.mean(keras.losses.categorical_crossentropy(onehot, logits,
                                                                    from_logits=True))
    gradients = tape.gradient(loss, model.trainable_weights)
    keras.optimizers.Adam(1e-3).apply_gradients(zip(gradients, model.trainable_weights))
    assert np.isfinite(float(loss)) and all(gradient is not None for gradient in gradients)
    changed = [not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights)]
    assert sum(changed) == len(changed)
