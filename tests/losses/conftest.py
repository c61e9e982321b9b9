"""Fixtures shared by the loss tests."""

import json

import keras
import pytest


@pytest.fixture
def round_trip():
    """A loss rebuilt from its JSON-serialised Keras config."""

    def rebuild(loss):
        config = json.loads(json.dumps(keras.saving.serialize_keras_object(loss)))
        return keras.saving.deserialize_keras_object(config)

    return rebuild
