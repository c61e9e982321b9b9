"""Serialisation checks every model passes (keras-hub's test-case helpers, as functions)."""

import json

import keras
import numpy as np


def assert_same_outputs(first, second, inputs, atol=1e-6):
    """Both models map ``inputs`` to the same outputs (a tensor or a dict of tensors)."""
    first_outputs, second_outputs = first(inputs), second(inputs)
    if not isinstance(first_outputs, dict):
        first_outputs, second_outputs = {"": first_outputs}, {"": second_outputs}
    assert first_outputs.keys() == second_outputs.keys()
    for key, value in first_outputs.items():
        np.testing.assert_allclose(second_outputs[key].numpy(), value.numpy(), atol=atol)


def assert_config_round_trip(model, inputs=None):
    """``get_config`` -> JSON -> ``from_config`` rebuilds the same class, config and weights.

    With ``inputs``, the rebuilt model given the original weights also gives the same outputs.
    Returns the rebuilt model.
    """
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(model)))
    restored = keras.saving.deserialize_keras_object(config)
    assert type(restored) is type(model)
    assert restored.get_config() == model.get_config()
    assert [w.shape for w in restored.weights] == [w.shape for w in model.weights]
    if inputs is not None:
        restored.set_weights(model.get_weights())
        assert_same_outputs(model, restored, inputs)
    return restored


def assert_keras_file_round_trip(model, inputs, path):
    """A ``.keras`` file at ``path`` loads back to the same class, config and outputs.

    Returns the loaded model.
    """
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model)
    assert loaded.get_config() == model.get_config()
    assert_same_outputs(model, loaded, inputs)
    return loaded


def multiclass_sgd_step(model, images, num_classes=3, seed=2):
    """One SGD step (lr 0.01, momentum 0.7, spec 5.5) on random labels, BCE on ``"logits"``.

    Returns:
        (loss as a float, gradients, trainable weights as NumPy arrays before the step).
    """
    import tensorflow as tf

    labels = np.random.default_rng(seed).integers(0, num_classes, size=images.shape[:3])
    onehot = np.eye(num_classes, dtype="float32")[labels]
    before = [w.numpy().copy() for w in model.trainable_weights]
    with tf.GradientTape() as tape:
        logits = model(images, training=True)["logits"]
        loss = keras.ops.mean(keras.losses.binary_crossentropy(onehot, logits, from_logits=True))
    gradients = tape.gradient(loss, model.trainable_weights)
    keras.optimizers.SGD(0.01, momentum=0.7).apply_gradients(
        zip(gradients, model.trainable_weights))
    return float(loss), gradients, before
