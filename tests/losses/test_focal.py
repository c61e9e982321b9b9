import numpy as np
import pytest

from tests.losses.references import naive_bce, sigmoid
from tfcovid.losses.bce import binary_crossentropy
from tfcovid.losses.focal import FocalLoss, focal_loss


def data(seed):
    rng = np.random.default_rng(seed)
    target = (rng.uniform(size=(2, 5, 6, 3)) > 0.6).astype("float32")
    logits = rng.normal(0.0, 2.0, target.shape).astype("float32")
    return target, logits


@pytest.mark.parametrize("from_logits", [True, False])
def test_gamma_zero_is_alpha_times_bce(from_logits):
    target, logits = data(7)
    prediction = logits if from_logits else sigmoid(logits).astype("float32")
    bce = np.asarray(binary_crossentropy(target, prediction, from_logits)).mean(axis=(1, 2, 3))
    got = focal_loss(target, prediction, alpha=1.0, gamma=0.0, from_logits=from_logits)
    np.testing.assert_allclose(np.asarray(got), bce, rtol=1e-6)
    scaled = focal_loss(target, prediction, alpha=0.25, gamma=0.0, from_logits=from_logits)
    np.testing.assert_allclose(np.asarray(scaled), 0.25 * bce, rtol=1e-6)


@pytest.mark.parametrize("from_logits", [True, False])
def test_focal_matches_numpy(from_logits):
    target, logits = data(8)
    bce = naive_bce(target, sigmoid(logits.astype("float64")))
    expected = (0.5 * (1.0 - np.exp(-bce)) ** 2 * bce).mean(axis=(1, 2, 3))
    prediction = logits if from_logits else sigmoid(logits).astype("float32")
    got = focal_loss(target, prediction, alpha=0.5, gamma=2.0, from_logits=from_logits)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4)


def test_hand_cases_with_probabilities():
    # y=1, p=0: BCE clamped to 100, p_t = e^-100 ~ 0, so 100; y=1, p=0.5: 0.25 log 2;
    # y=0, p=0: 0; y=1, p=1: 0
    target = np.array([[1.0, 1.0, 0.0, 1.0]], "float32")
    probability = np.array([[0.0, 0.5, 0.0, 1.0]], "float32")
    expected = (100.0 + 0.25 * np.log(2.0)) / 4
    assert float(focal_loss(target, probability)[0]) == pytest.approx(expected, rel=1e-6)


def test_wrapper_round_trip(round_trip):
    target, logits = data(9)
    loss = FocalLoss(alpha=2.0, gamma=1.5, from_logits=True)
    rebuilt = round_trip(loss)
    assert rebuilt.get_config() == loss.get_config()
    expected = np.asarray(focal_loss(target, logits, 2.0, 1.5, True)).mean()
    assert float(rebuilt(target, logits)) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match=r"gamma=-1"):
        FocalLoss(gamma=-1)
