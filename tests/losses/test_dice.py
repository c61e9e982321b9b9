import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.metrics import f1_score

from tests.losses.references import sigmoid
from tfcovid.losses.dice import DiceLoss, dice_loss

masks = hnp.arrays(bool, st.tuples(st.integers(1, 3), st.integers(1, 7), st.integers(1, 6)))


@settings(max_examples=40, deadline=None)
@given(masks, st.data())
def test_hard_masks_give_one_minus_dice(truth, data):
    prediction = data.draw(hnp.arrays(bool, truth.shape))
    # Dice on hard masks is the F1 score of the pixels; both empty counts as a perfect 1
    expected = [1.0 - f1_score(t.ravel(), p.ravel(), zero_division=1.0)
                for t, p in zip(truth, prediction)]
    got = dice_loss(truth[..., None].astype("float32"), prediction[..., None].astype("float32"))
    np.testing.assert_allclose(np.asarray(got), expected, atol=1e-6)


def test_soft_dice_per_channel_then_mean():
    rng = np.random.default_rng(10)
    truth = (rng.uniform(size=(2, 6, 5, 3)) > 0.5).astype("float32")
    logits = rng.normal(size=truth.shape).astype("float32")
    probability = sigmoid(logits.astype("float64"))
    dice = 2 * (truth * probability).sum(axis=(1, 2)) / (truth + probability).sum(axis=(1, 2))
    expected = (1.0 - dice).mean(axis=-1)
    np.testing.assert_allclose(np.asarray(dice_loss(truth, logits, from_logits=True)), expected,
                               rtol=1e-5)
    loss = DiceLoss(from_logits=True)
    assert float(loss(truth, logits)) == pytest.approx(expected.mean(), rel=1e-5)


def test_smooth_and_round_trip(round_trip):
    truth = np.zeros((1, 4, 5, 1), "float32")  # empty truth, prediction 0.5 on 2 pixels
    prediction = np.zeros_like(truth)
    prediction[0, 0, :2] = 0.5
    loss = DiceLoss(smooth=1.0)
    rebuilt = round_trip(loss)
    assert rebuilt.get_config() == loss.get_config()
    assert float(rebuilt(truth, prediction)) == pytest.approx(1.0 - 1.0 / 2.0)  # 1 - (0+1)/(1+1)
    assert float(DiceLoss()(truth, np.zeros_like(truth))) == 0.0  # both empty: Dice 1


def test_unknown_empty_policy_is_rejected():
    with pytest.raises(ValueError, match=r"empty='ignore'"):
        DiceLoss(empty="ignore")
