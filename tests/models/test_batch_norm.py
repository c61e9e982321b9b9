"""The fused batch normalisation against Keras' own layer: outputs, gradients and moving
statistics in training and inference mode, other dtypes, Keras' path, serialisation."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfcovid.models.batch_norm import BatchNormalization


def layer_pair(channels=3, rank=4, **options):
    """The fused layer and Keras' with the same random gamma, beta and moving statistics, built
    for inputs of ``rank`` dimensions."""
    rng = np.random.default_rng(0)
    weights = [rng.uniform(0.5, 2.0, channels), rng.normal(size=channels),
               rng.normal(size=channels), rng.uniform(0.5, 2.0, channels)]
    layers = []
    for layer_type in (BatchNormalization, keras.layers.BatchNormalization):
        layer = layer_type(**options)
        layer.build((None,) * (rank - 1) + (channels,))
        layer.set_weights([w.astype("float32") for w in weights])
        layers.append(layer)
    return layers


def images(shape=(2, 5, 7, 3), seed=1):
    return tf.constant(np.random.default_rng(seed).normal(2.0, 3.0, size=shape), tf.float32)


def numpy_batch_norm(x, gamma, beta, mean, variance, epsilon):
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


@pytest.mark.parametrize("training", [False, True])
def test_outputs_gradients_and_statistics_equal_keras(training):
    fused, reference = layer_pair(momentum=0.9, epsilon=1e-5)
    x = images()
    results = []
    for layer in (fused, reference):
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = layer(x, training=training)
            loss = tf.reduce_sum(outputs * tf.range(3, dtype=tf.float32))
        gradients = tape.gradient(loss, [x, layer.gamma, layer.beta])
        results.append((outputs, gradients, [w.numpy() for w in layer.non_trainable_weights]))
    (outputs, gradients, statistics), (outputs_ref, gradients_ref, statistics_ref) = results
    np.testing.assert_allclose(outputs, outputs_ref, rtol=1e-5, atol=1e-5)
    for gradient, gradient_ref in zip(gradients, gradients_ref):
        np.testing.assert_allclose(gradient, gradient_ref, rtol=1e-4, atol=1e-4)
    for value, value_ref in zip(statistics, statistics_ref):
        np.testing.assert_allclose(value, value_ref, rtol=1e-5, atol=1e-6)


def test_training_mode_matches_numpy_and_moves_statistics_by_the_biased_variance():
    fused, _ = layer_pair(momentum=0.75, epsilon=1e-3)
    gamma, beta, mean0, variance0 = [w.numpy().astype("float64") for w in fused.weights]
    x = images(seed=2)
    outputs = fused(x, training=True).numpy()
    values = x.numpy().astype("float64")
    mean, variance = values.mean(axis=(0, 1, 2)), values.var(axis=(0, 1, 2))  # biased
    np.testing.assert_allclose(outputs, numpy_batch_norm(values, gamma, beta, mean, variance,
                                                         1e-3), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fused.moving_mean.numpy(), 0.75 * mean0 + 0.25 * mean,
                               rtol=1e-6)
    np.testing.assert_allclose(fused.moving_variance.numpy(),
                               0.75 * variance0 + 0.25 * variance, rtol=1e-5)
    inference = fused(x, training=False).numpy()
    np.testing.assert_allclose(inference, numpy_batch_norm(
        values, gamma, beta, fused.moving_mean.numpy(), fused.moving_variance.numpy(), 1e-3),
        rtol=1e-5, atol=1e-5)


def test_frozen_layer_normalises_by_moving_statistics_in_training_mode():
    fused, _ = layer_pair()
    fused.trainable = False
    before = [w.numpy() for w in fused.weights]
    outputs = fused(images(), training=True).numpy()
    gamma, beta, mean, variance = before
    np.testing.assert_allclose(outputs, numpy_batch_norm(images().numpy(), gamma, beta, mean,
                                                         variance, fused.epsilon), atol=1e-5)
    for value, value_before in zip(fused.weights, before):
        np.testing.assert_array_equal(value.numpy(), value_before)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_half_precision_inputs_keep_their_dtype_and_stay_close(policy):
    fused, reference = layer_pair(momentum=0.9, epsilon=1e-5, dtype=policy)
    x = tf.cast(images(), fused.compute_dtype)
    for training in (True, False):
        outputs = fused(x, training=training)
        assert outputs.dtype == fused.compute_dtype
        np.testing.assert_allclose(tf.cast(outputs, tf.float32),
                                   tf.cast(reference(x, training=training), tf.float32),
                                   rtol=0.02, atol=0.02)
    assert fused.moving_mean.dtype == "float32"
    np.testing.assert_allclose(fused.moving_mean.numpy(), reference.moving_mean.numpy(),
                               rtol=1e-3)


def test_xla_training_step_equals_the_graph_one():
    fused, _ = layer_pair()
    x = images()

    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(fused(x, training=True) ** 2)
        return tape.gradient(loss, fused.gamma)

    graph = tf.function(step)(x).numpy()
    np.testing.assert_allclose(tf.function(step, jit_compile=True)(x).numpy(), graph,
                               rtol=1e-4, atol=1e-4)


def test_other_inputs_take_the_keras_path():
    fused, reference = layer_pair(channels=4, rank=2)
    x = tf.constant(np.random.default_rng(3).normal(size=(6, 4)), tf.float32)  # 2-D
    np.testing.assert_allclose(fused(x, training=True), reference(x, training=True),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(fused.moving_variance.numpy(),
                               reference.moving_variance.numpy(), rtol=1e-6)


def test_config_round_trip_and_registered_name():
    layer = BatchNormalization(momentum=0.8, epsilon=1e-4, name="bn")
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))
    restored = keras.saving.deserialize_keras_object(config)
    assert type(restored) is BatchNormalization
    assert (restored.momentum, restored.epsilon, restored.name) == (0.8, 1e-4, "bn")
    assert isinstance(restored, keras.layers.BatchNormalization)
