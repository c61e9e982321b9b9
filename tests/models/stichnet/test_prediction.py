"""Batch-norm recalibration of the prediction path, on a small network with nested BN."""

import keras
import numpy as np

from tfcovid.models.stichnet import prediction


def test_recalibration_moves_nested_statistics_and_restores_momentum():
    inner = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization(momentum=0.99)])
    network = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3, use_bias=False),
                                inner])
    network.layers[0].set_weights([np.eye(3, dtype="float32")])
    norm = inner.layers[0]
    assert prediction.batch_norm_layers(network) == [norm]
    batch = np.array([[1.0, 2.0, 3.0], [3.0, 6.0, 9.0]], "float32")  # column means 2, 4, 6
    # momentum 0.5 over 3 batches: 0.5^3 of the initial 0 stays, 7/8 of the batch mean moves in
    assert prediction.recalibrate_batch_norm(network, [batch] * 3, momentum=0.5) == 3
    np.testing.assert_allclose(norm.moving_mean.numpy(), [2 * 7 / 8, 4 * 7 / 8, 6 * 7 / 8],
                               rtol=1e-6)
    assert norm.momentum == 0.99
