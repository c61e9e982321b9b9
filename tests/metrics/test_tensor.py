"""keras.ops Dice and IoU against hand counts, NumPy formulas and the NumPy overlap metrics."""

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings

from tfcovid.metrics import overlap, tensor


def test_dice_and_iou_counted_by_hand():
    # truth: 4 pixels, prediction: 3, overlap: 2  ->  Dice = 2*2/(4+3) = 4/7, IoU = 2/(4+3-2) = 2/5
    truth = np.zeros((1, 4, 5, 1), "float32")
    truth[0, 1:3, 1:3] = 1
    pred = np.zeros_like(truth)
    pred[0, 1, 2:4] = 1
    pred[0, 2, 2] = 1
    assert float(tensor.dice_score(truth, pred)) == pytest.approx(4 / 7, abs=1e-6)
    assert float(tensor.iou_score(truth, pred)) == pytest.approx(2 / 5, abs=1e-6)
    # smooth 1: (2*2 + 1) / (7 + 1) and (2 + 1) / (5 + 1)
    assert float(tensor.dice_score(truth, pred, smooth=1.0)) == pytest.approx(5 / 8, abs=1e-6)
    assert float(tensor.iou_score(truth, pred, smooth=1.0)) == pytest.approx(3 / 6, abs=1e-6)


def test_hard_masks_per_image_and_class_equal_the_numpy_overlap():
    rng = np.random.default_rng(0)
    labels = rng.choice(3, size=(2, 32, 48), p=[0.6, 0.3, 0.1])
    predicted = np.where(rng.random((2, 32, 48)) < 0.7, labels, rng.choice(3, (2, 32, 48)))
    truth, pred = np.eye(3, dtype="float32")[labels], np.eye(3, dtype="float32")[predicted]
    dice = np.asarray(tensor.dice_score(truth, pred, axis=(1, 2)))
    iou = np.asarray(tensor.iou_score(truth, pred, axis=(1, 2)))
    assert dice.shape == (2, 3)
    for index in range(2):
        expected = overlap.multiclass_overlap(labels[index], predicted[index])
        np.testing.assert_allclose(dice[index], expected["dice"], rtol=1e-6)
        np.testing.assert_allclose(iou[index], expected["iou"], rtol=1e-6)


def test_soft_weighted_scores_match_the_numpy_formula():
    rng = np.random.default_rng(1)
    truth = (rng.random((2, 36, 20, 1)) < 0.4).astype("float32")
    pred = rng.random((2, 36, 20, 1)).astype("float32")
    weights = 1 + 5 * rng.random((2, 36, 20, 1)).astype("float32")
    intersection = (weights * truth * pred).sum(axis=(1, 2, 3))
    total = (weights * (truth + pred)).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(tensor.dice_score(truth, pred, axis=(1, 2, 3), weights=weights),
                               2 * intersection / total, rtol=1e-5)
    np.testing.assert_allclose(tensor.iou_score(truth, pred, axis=(1, 2, 3), weights=weights,
                                                smooth=1.0),
                               (intersection + 1) / (total - intersection + 1), rtol=1e-5)


@pytest.mark.parametrize("empty, expected", [("nan", np.nan), ("one", 1.0), ("zero", 0.0)])
def test_empty_channel_follows_the_policy(empty, expected):
    truth = np.zeros((2, 6, 8, 2), "float32")
    truth[0, :2, :2, 0] = 1
    pred = truth.copy()
    dice = np.asarray(tensor.dice_score(truth, pred, axis=(1, 2), empty=empty))
    np.testing.assert_array_equal(dice, [[1.0, expected], [expected, expected]])
    with pytest.raises(ValueError, match=r"empty='skip'"):
        tensor.iou_score(truth, pred, empty="skip")


def test_gradients_stay_finite_on_empty_masks():
    import tensorflow as tf

    truth = np.zeros((2, 6, 8, 1), "float32")
    truth[0, 1:4, 2:5] = 1
    pred = tf.Variable(np.zeros((2, 6, 8, 1), "float32"))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(1 - tensor.dice_score(truth, pred, axis=(1, 2), empty="one"))
    assert np.isfinite(tape.gradient(loss, pred).numpy()).all()


masks = hnp.arrays(np.float32, (1, 5, 7, 1), elements=hnp.from_dtype(np.dtype(bool)).map(float))


@settings(max_examples=25, deadline=None)
@given(masks, masks)
def test_hard_dice_is_symmetric_and_equals_2iou_over_1_plus_iou(first, second):
    dice = float(tensor.dice_score(first, second, empty="one"))
    iou = float(tensor.iou_score(first, second, empty="one"))
    assert dice == pytest.approx(float(tensor.dice_score(second, first, empty="one")), abs=1e-6)
    assert dice == pytest.approx(2 * iou / (1 + iou), abs=1e-6)
