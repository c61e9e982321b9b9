"""Single-class Inf-Net: outputs, parameter counts, serialisation, a training step."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfcovid.models
from tfcovid.models.infnet import InfNetConfig
from tfcovid.models.infnet.attention import reverse_attention
from tfcovid.models.infnet.partial_decoder import PartialDecoder
from tfcovid.models.infnet.rfb import ReceptiveFieldBlock
from tests.models import checks

KEYS = {"lateral_5", "lateral_4", "lateral_3", "lateral_2", "edge"}


@pytest.fixture(scope="module")
def tiny_model():
    keras.utils.set_random_seed(0)
    return tfcovid.models.build("infnet", InfNetConfig.tiny())


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).normal(size=(2, 64, 96, 3)).astype("float32")


def count(weights):
    return sum(int(np.prod(weight.shape)) for weight in weights)


def test_outputs_are_float32_logits_at_input_resolution(tiny_model, images):
    outputs = tiny_model(images)
    assert set(outputs) == KEYS
    for value in outputs.values():
        assert tuple(value.shape) == (2, 64, 96, 1) and value.dtype == tf.float32
        assert np.isfinite(value.numpy()).all()
    # 40 x 72 is no multiple of 32: stages of 5 x 9 and 3 x 5 pixels still meet in the sums
    smaller = tiny_model(images[:, :40, :72])
    assert {tuple(value.shape) for value in smaller.values()} == {(2, 40, 72, 1)}


def test_predict_returns_the_final_map(tiny_model, images):
    predicted = tiny_model.predict(images, batch_size=2, verbose=0)
    np.testing.assert_allclose(predicted, tiny_model(images)["lateral_2"].numpy(), atol=1e-6)


def test_full_width_parameter_counts_match_the_spec():
    model = tfcovid.models.build("infnet")  # symbolic graph only, no forward pass
    total = count(model.trainable_weights)
    # spec 2.8: 33,121,721 includes the unused 2048 -> 1000 classifier (2048 * 1000 + 1000)
    assert total == 33_121_721 - (2048 * 1000 + 1000) == 31_072_721
    assert total - count(model.backbone.trainable_weights) == 7_403_369  # RFB, PPD, RA, edge


def test_component_parameter_counts_by_hand():
    # RFB, C_in = 12, C = 4: weights of each ConvBN plus 2 C for BN gamma and beta
    c_in, c = 12, 4
    branches = c_in * c + sum(c_in * c + 2 * k * c * c + 9 * c * c for k in (3, 5, 7))
    expected = branches + 9 * 4 * c * c + c_in * c + 15 * 2 * c  # conv_cat, conv_res; 15 units
    rfb = ReceptiveFieldBlock(c)
    rfb.build((None, 8, 8, c_in))
    assert count(rfb.trainable_weights) == expected
    # PPD, C = 4: cu1-4 (C -> C), cu5 and cc2 (2C -> 2C), cc3 and conv4 (3C -> 3C), 3x3 each;
    # conv5 1x1 3C -> 1 with bias
    decoder = PartialDecoder(c)
    decoder.build((None, 2, 3, c), (None, 4, 6, c), (None, 8, 12, c))
    convs = 9 * (4 * c * c + 2 * (2 * c) ** 2 + 2 * (3 * c) ** 2)
    batch_norms = 2 * (4 * c + 2 * 2 * c + 2 * 3 * c)
    assert count(decoder.trainable_weights) == convs + batch_norms + 3 * c + 1


def test_reverse_attention_matches_numpy():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(2, 3, 4, 5)).astype("float32")
    logits = rng.normal(size=(2, 3, 4, 1)).astype("float32")
    expected = features * (1 - 1 / (1 + np.exp(-logits)))
    np.testing.assert_allclose(np.asarray(reverse_attention(features, logits)), expected,
                               atol=1e-6)


def test_config_json_round_trip_gives_the_same_structure(tiny_model, images):
    checks.assert_config_round_trip(tiny_model, images)


def test_keras_file_save_and_load(tiny_model, images, tmp_path):
    checks.assert_keras_file_round_trip(tiny_model, images, tmp_path / "infnet.keras")


def test_a_gradient_step_changes_weights_and_gives_a_finite_loss(images):
    keras.utils.set_random_seed(1)
    model = tfcovid.models.build("infnet", InfNetConfig.tiny())
    masks = (np.random.default_rng(2).random((2, 64, 96, 1)) > 0.7).astype("float32")
    optimizer = keras.optimizers.Adam(1e-3)
    before = [w.numpy().copy() for w in model.trainable_weights]
    with tf.GradientTape() as tape:
        outputs = model(images, training=True)
        loss = sum(keras.ops.mean(keras.losses.binary_crossentropy(masks, value, from_logits=True))
                   for value in outputs.values())
    gradients = tape.gradient(loss, model.trainable_weights)
    optimizer.apply_gradients(zip(gradients, model.trainable_weights))
    assert np.isfinite(float(loss))
    assert all(gradient is not None for gradient in gradients)
    changed = [not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights)]
    assert all(changed)


def test_mixed_precision_keeps_float32_logits(images):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = tfcovid.models.build("infnet", InfNetConfig.tiny())
        outputs = model(images)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("rfb2_1").compute_dtype == "float16"
    assert {value.dtype for value in outputs.values()} == {tf.float32}
    assert all(np.isfinite(value.numpy()).all() for value in outputs.values())


def test_config_options_reach_the_model():
    model = tfcovid.models.build("infnet", InfNetConfig.tiny(input_channels=1), channels=4)
    assert model.channels == 4 and model.input_shape == (None, None, None, 1)
    assert model.get_layer("rfb2_1").output.shape[-1] == 4


def test_more_than_one_class_is_rejected():
    with pytest.raises(ValueError, match=r"Received: num_classes=2"):
        tfcovid.models.build("infnet", InfNetConfig.tiny(num_classes=2))
