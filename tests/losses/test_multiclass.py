import numpy as np
import pytest
from scipy.special import log_softmax

from tests.losses.references import naive_bce, sigmoid
from tfcovid.losses.multiclass import (
    MultiClassBCE,
    SoftmaxCrossEntropy,
    multiclass_bce,
    softmax_cross_entropy,
)


def one_hot_and_logits(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, (2, 5, 6))  # 0 background, 1 GGO, 2 consolidation
    return np.eye(3, dtype="float32")[labels], rng.normal(0, 2, (2, 5, 6, 3)).astype("float32")


def test_bce_on_sigmoid_outputs_matches_numpy():
    one_hot, logits = one_hot_and_logits(11)
    probability = sigmoid(logits.astype("float64"))
    expected = naive_bce(one_hot, probability).mean(axis=(1, 2, 3))
    got = multiclass_bce(one_hot, probability.astype("float32"))
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(multiclass_bce(one_hot, logits, from_logits=True)),
                               expected, rtol=1e-5)


def test_bce_clamps_like_pytorch():
    # one pixel of class 0 predicted as class 2 with certainty: two elements cost 100 each
    one_hot = np.array([[[[1.0, 0.0, 0.0]]]], "float32")
    prediction = np.array([[[[0.0, 0.0, 1.0]]]], "float32")
    assert float(multiclass_bce(one_hot, prediction)[0]) == pytest.approx(200.0 / 3.0)


def test_softmax_cross_entropy_matches_scipy():
    one_hot, logits = one_hot_and_logits(12)
    expected = -(one_hot * log_softmax(logits.astype("float64"), axis=-1)).sum(-1).mean((1, 2))
    np.testing.assert_allclose(np.asarray(softmax_cross_entropy(one_hot, logits)), expected,
                               rtol=1e-5)
    probabilities = np.exp(log_softmax(logits.astype("float64"), axis=-1)).astype("float32")
    np.testing.assert_allclose(
        np.asarray(softmax_cross_entropy(one_hot, probabilities, from_logits=False)), expected,
        rtol=1e-5)


@pytest.mark.parametrize("loss", [MultiClassBCE(from_logits=True), SoftmaxCrossEntropy()])
def test_wrappers_round_trip(loss, round_trip):
    one_hot, logits = one_hot_and_logits(13)
    rebuilt = round_trip(loss)
    assert rebuilt.get_config() == loss.get_config()
    assert float(rebuilt(one_hot, logits)) == pytest.approx(float(loss(one_hot, logits)))


def test_rank_is_checked():
    with pytest.raises(ValueError, match=r"y_pred.shape=\(5, 3\)"):
        multiclass_bce(np.zeros((5, 3)), np.zeros((5, 3)))
