"""The StichNet network: outputs, latent shapes, styles in [0, 1], serialisation, tiling."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfcovid.models
from tfcovid.losses import stichnet as losses
from tfcovid.models.stichnet import StichNet, StichNetModelConfig, prediction

HEIGHT, WIDTH = 32, 64  # H != W, both multiples of the encoders' stride 32


@pytest.fixture(scope="module")
def network():
    return tfcovid.models.build("stichnet", StichNetModelConfig.tiny())


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(size=(2, HEIGHT, WIDTH, 1)).astype("float32")


def test_outputs_are_normalised_and_styles_lie_in_unit_interval(network, images):
    outputs = network(images, training=False)
    assert {name: tuple(value.shape) for name, value in outputs.items()} == {
        "logits": (2, HEIGHT, WIDTH, 3), "class_log_probs": (2, HEIGHT, WIDTH, 4),
        "styles": (2, HEIGHT, WIDTH, 4), "reconstruction": (2, HEIGHT, WIDTH, 1)}
    styles = np.asarray(outputs["styles"])
    assert styles.min() >= 0 and styles.max() <= 1
    np.testing.assert_allclose(np.exp(np.asarray(outputs["logits"])).sum(-1), 1, rtol=1e-5)
    four = np.exp(np.asarray(outputs["class_log_probs"]))
    # the store's background is StichNet's background plus healthy lung
    np.testing.assert_allclose(np.exp(np.asarray(outputs["logits"]))[..., 0],
                               four[..., 0] + four[..., 1], rtol=1e-5)
    # Phi: the reconstruction is the class-weighted mix of the style images
    np.testing.assert_allclose(np.asarray(outputs["reconstruction"])[..., 0],
                               (four * styles).sum(-1), rtol=1e-5)


def test_latent_levels_halve_from_stride_two_to_thirty_two(network, images):
    parts = network.forward(images, mode="sample", training=False)
    for name in ("z", "k"):
        shapes = [tuple(loc.shape) for loc, _ in parts[name]["posterior"]]
        assert shapes == [(2, HEIGHT // 2**n, WIDTH // 2**n, 1) for n in range(1, 6)]
        # level 5's prior is the unit Gaussian
        loc, log_var = parts[name]["prior"][4]
        assert not np.any(np.asarray(loc)) and not np.any(np.asarray(log_var))
    assert parts["style"].shape == (2, HEIGHT, WIDTH, 4)
    mean = network.forward(images, mode="mean", training=False)
    np.testing.assert_allclose(np.asarray(mean["z"]["samples"][0]),
                               np.asarray(mean["z"]["posterior"][0][0]))


def test_config_round_trips_through_json(network):
    config = json.loads(json.dumps(network.get_config()))
    assert {key: config[key] for key in ("widths", "alpha", "compact", "latent_channels")} == {
        "widths": [8, 8, 8, 8, 8], "alpha": 0.35, "compact": True, "latent_channels": 1}


@pytest.mark.slow
def test_saved_model_predicts_the_same(network, images, tmp_path):
    path = tmp_path / "stichnet.keras"
    network.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, StichNet)
    for name, value in network(images, training=False).items():
        np.testing.assert_allclose(np.asarray(loaded(images, training=False)[name]),
                                   np.asarray(value), atol=1e-6)


def test_tiled_prediction_and_uncertainty(network):
    images = np.random.default_rng(1).uniform(size=(1, 40, 72, 1)).astype("float32")
    probabilities = prediction.predict_probabilities(network, images, patch_size=32, stride=16)
    assert probabilities.shape == (1, 40, 72, 3)
    np.testing.assert_allclose(np.asarray(probabilities).sum(-1), 1, rtol=1e-5)
    entropy = np.asarray(prediction.predict_uncertainty(network, images, samples=2,
                                                        patch_size=32, stride=32))
    assert entropy.shape == (1, 40, 72)
    assert entropy.min() >= -1e-6 and entropy.max() <= np.log(3) + 1e-6


@pytest.mark.slow
def test_a_few_adam_steps_lower_the_loss_with_finite_gradients(network):
    rng = np.random.default_rng(2)
    images = rng.uniform(size=(3, 64, 64, 1)).astype("float32")
    labels = rng.integers(0, 4, (2, 64, 64)).astype("int32")
    optimizer = keras.optimizers.Adam(1e-3)
    variables = network.trainable_variables
    values = []
    for _ in range(3):
        with tf.GradientTape() as tape:
            parts = network.forward(images, mode="sample", training=True)
            loss = losses.elbo_terms(parts, images, labels, num_labelled=2)["loss"]
        gradients = tape.gradient(loss, variables)
        assert all(np.all(np.isfinite(gradient.numpy())) for gradient in gradients)
        optimizer.apply(gradients, variables)
        values.append(float(loss))
    assert np.all(np.isfinite(values)) and values[2] < values[1] < values[0]


def test_tiny_config_is_compact_and_validated():
    assert StichNetModelConfig.tiny().compact and not StichNetModelConfig().compact
    with pytest.raises(ValueError, match="widths=\\(8, 0, 8, 8, 8\\)"):
        StichNetModelConfig(widths=(8, 0, 8, 8, 8))
