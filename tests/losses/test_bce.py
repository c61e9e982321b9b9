import numpy as np
import pytest
import tensorflow as tf

from tests.losses.references import naive_bce, sigmoid
from tfcovid.losses.bce import binary_crossentropy


def test_from_logits_matches_textbook_formula():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (2, 5, 6, 1))
    target = rng.uniform(0, 1, logits.shape)  # soft targets, as resized masks
    expected = naive_bce(target, sigmoid(logits))
    got = binary_crossentropy(target.astype("float32"), logits.astype("float32"), from_logits=True)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-6)


def test_probabilities_match_textbook_formula_and_clamp_at_100():
    target = np.array([1.0, 0.0, 1.0, 0.0, 0.3], "float32")
    probability = np.array([0.0, 1.0, 1.0, 0.0, 0.6], "float32")
    # -log(0) clamped to 100 (PyTorch BCELoss); exact hits cost 0; the last is the textbook value
    expected = [100.0, 100.0, 0.0, 0.0, naive_bce(0.3, 0.6)]
    np.testing.assert_allclose(np.asarray(binary_crossentropy(target, probability)), expected,
                               rtol=1e-6)


def test_gradients_stay_finite_at_saturated_inputs():
    target = tf.constant([1.0, 0.0, 1.0, 0.0])
    probability = tf.Variable([0.0, 1.0, 1.0, 0.0])
    logits = tf.Variable([-200.0, 200.0, 200.0, -200.0])
    with tf.GradientTape(persistent=True) as tape:
        from_probabilities = tf.reduce_sum(binary_crossentropy(target, probability))
        from_logits = tf.reduce_sum(binary_crossentropy(target, logits, from_logits=True))
    assert float(from_logits) == pytest.approx(400.0)  # two elements wrong by 200 each
    assert np.isfinite(tape.gradient(from_probabilities, probability).numpy()).all()
    assert np.isfinite(tape.gradient(from_logits, logits).numpy()).all()
