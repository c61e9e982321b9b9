"""Overlap metrics against hand counts, scikit-learn and MedPy."""

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import sklearn.metrics
from hypothesis import given, settings
from medpy.metric import binary as medpy_binary

from tests.metrics.references import blob_mask, noisy_prediction
from tfcovid.metrics import overlap


def _sklearn_binary(truth, pred_mask, zero_division=0.0):
    truth, pred_mask = truth.ravel(), pred_mask.ravel()
    tn, fp, fn, tp = sklearn.metrics.confusion_matrix(truth, pred_mask, labels=[0, 1]).ravel()
    return {"dice": sklearn.metrics.f1_score(truth, pred_mask, zero_division=zero_division),
            "iou": sklearn.metrics.jaccard_score(truth, pred_mask, zero_division=zero_division),
            "sensitivity": sklearn.metrics.recall_score(truth, pred_mask,
                                                        zero_division=zero_division),
            "specificity": tn / (tn + fp),
            "precision": sklearn.metrics.precision_score(truth, pred_mask,
                                                         zero_division=zero_division)}


def test_binary_overlap_counted_by_hand():
    # 4 x 5 image. truth: 4 pixels, prediction: 3, overlap: 2 -> TP 2, FP 1, FN 2, TN 15
    truth = np.zeros((4, 5))
    truth[1:3, 1:3] = 1
    pred = np.zeros((4, 5))
    pred[1, 2:4] = 0.9
    pred[2, 2] = 0.5  # 0.5 counts: pred >= 0.5
    assert overlap.confusion_counts(truth, pred) == (2, 1, 2, 15)
    metrics = overlap.binary_overlap(truth, pred)
    expected = {"dice": 4 / 7, "iou": 2 / 5, "sensitivity": 2 / 4, "specificity": 15 / 16,
                "precision": 2 / 3}
    assert metrics == pytest.approx(expected, abs=1e-12)
    assert overlap.binary_overlap(truth, pred, threshold=0.6)["dice"] == pytest.approx(2 / 6)


@pytest.mark.parametrize("seed", range(4))
def test_binary_overlap_matches_sklearn_on_random_and_structured_masks(seed):
    rng = np.random.default_rng(seed)
    random_truth = rng.random((32, 48)) < 0.3
    random_pred = np.round(rng.random((32, 48)), 1)  # many values exactly 0.5
    blob_truth = blob_mask(rng)
    blob_pred = noisy_prediction(rng, blob_truth)
    for truth, pred in ((random_truth, random_pred), (blob_truth, blob_pred)):
        expected = _sklearn_binary(truth, pred >= 0.5)
        assert overlap.binary_overlap(truth, pred) == pytest.approx(expected, rel=1e-12)


def test_binary_overlap_matches_medpy():
    rng = np.random.default_rng(7)
    truth = blob_mask(rng)
    pred_mask = noisy_prediction(rng, truth) >= 0.5
    metrics = overlap.binary_overlap(truth, pred_mask)
    assert metrics["dice"] == pytest.approx(medpy_binary.dc(pred_mask, truth), rel=1e-12)
    assert metrics["iou"] == pytest.approx(medpy_binary.jc(pred_mask, truth), rel=1e-12)
    assert metrics["sensitivity"] == pytest.approx(medpy_binary.sensitivity(pred_mask, truth))
    assert metrics["specificity"] == pytest.approx(medpy_binary.specificity(pred_mask, truth))
    assert metrics["precision"] == pytest.approx(medpy_binary.precision(pred_mask, truth))


@pytest.mark.parametrize("empty, zero_division", [("one", 1.0), ("zero", 0.0)])
@pytest.mark.parametrize("truth_empty, pred_empty", [(True, True), (True, False), (False, True)])
def test_empty_policies_match_sklearn_zero_division(empty, zero_division, truth_empty,
                                                    pred_empty):
    truth = np.zeros((6, 7), bool)
    pred = np.zeros((6, 7), bool)
    if not truth_empty:
        truth[1:3, 2:5] = True
    if not pred_empty:
        pred[3:5, 1:3] = True
    expected = _sklearn_binary(truth, pred, zero_division=zero_division)
    assert overlap.binary_overlap(truth, pred, empty=empty) == pytest.approx(expected)


def test_empty_policy_nan_marks_only_undefined_ratios():
    truth = np.zeros((6, 7), bool)
    both_empty = overlap.binary_overlap(truth, np.zeros((6, 7)))
    undefined = ("dice", "iou", "sensitivity", "precision")
    assert np.isnan([both_empty[name] for name in undefined]).all()
    assert both_empty["specificity"] == 1.0  # 42 / 42
    only_pred = np.zeros((6, 7))
    only_pred[0, 0] = 1.0
    metrics = overlap.binary_overlap(truth, only_pred)
    assert metrics["dice"] == 0.0 and metrics["iou"] == 0.0 and metrics["precision"] == 0.0
    assert np.isnan(metrics["sensitivity"])
    assert metrics["specificity"] == pytest.approx(41 / 42)


def test_binarize_truth_reads_png_grey_levels_like_the_toolbox():
    grey = np.array([[0, 128, 129, 255]], np.uint8)
    assert overlap.binarize_truth(grey).tolist() == [[False, False, True, True]]
    assert overlap.binarize_truth(np.array([[0, 1, 1, 0]])).tolist() == [[False, True, True,
                                                                          False]]
    with pytest.raises(ValueError, match=r"not soft values. Received: 0.7"):
        overlap.binarize_truth(np.array([[0.0, 0.7, 1.0]]))


masks = hnp.arrays(bool, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12))


@settings(max_examples=60, deadline=None)
@given(masks, masks)
def test_dice_is_symmetric_and_equals_2iou_over_1_plus_iou(first, second):
    shape = tuple(min(a, b) for a, b in zip(first.shape, second.shape))
    first, second = first[: shape[0], : shape[1]], second[: shape[0], : shape[1]]
    forward = overlap.binary_overlap(first, second, empty="one")
    backward = overlap.binary_overlap(second, first, empty="one")
    assert forward["dice"] == pytest.approx(backward["dice"], abs=1e-12)
    assert forward["iou"] == pytest.approx(backward["iou"], abs=1e-12)
    assert forward["dice"] == pytest.approx(2 * forward["iou"] / (1 + forward["iou"]), abs=1e-12)
    assert sum(overlap.confusion_counts(first, second)) == first.size


def test_multiclass_overlap_counted_by_hand():
    # 2 x 4 label maps (0 background, 1 GGO, 2 consolidation)
    truth = np.array([[0, 0, 1, 1], [0, 2, 2, 1]])
    pred = np.array([[0, 1, 1, 1], [0, 2, 0, 0]])
    # background: TP 2 (0,0)(1,0), FP 2 (1,2)(1,3), FN 1 (0,1) -> Dice 4/7
    # GGO:        TP 2 (0,2)(0,3), FP 1 (0,1), FN 1 (1,3)       -> Dice 4/6
    # consolidation: TP 1 (1,1), FP 0, FN 1 (1,2), TN 6          -> Dice 2/3, specificity 1
    counts = overlap.multiclass_confusion_counts(truth, pred)
    assert counts.tp.tolist() == [2, 2, 1] and counts.fp.tolist() == [2, 1, 0]
    assert counts.fn.tolist() == [1, 1, 1] and counts.tn.tolist() == [3, 4, 6]
    metrics = overlap.multiclass_overlap(truth, pred)
    np.testing.assert_allclose(metrics["dice"], [4 / 7, 4 / 6, 2 / 3])
    np.testing.assert_allclose(metrics["specificity"], [3 / 5, 4 / 5, 6 / 6])


@pytest.mark.parametrize("seed", range(3))
def test_multiclass_overlap_matches_sklearn_per_class(seed):
    rng = np.random.default_rng(seed)
    truth = rng.choice(3, size=(36, 52), p=[0.7, 0.2, 0.1])
    scores = rng.random((36, 52, 3)) + 0.8 * np.eye(3)[truth]  # argmax agrees often
    labels = scores.argmax(axis=-1)
    metrics = overlap.multiclass_overlap(truth, scores)
    flat_truth, flat_pred = truth.ravel(), labels.ravel()
    kwargs = {"labels": [0, 1, 2], "average": None}
    np.testing.assert_allclose(metrics["dice"],
                               sklearn.metrics.f1_score(flat_truth, flat_pred, **kwargs))
    np.testing.assert_allclose(metrics["iou"],
                               sklearn.metrics.jaccard_score(flat_truth, flat_pred, **kwargs))
    np.testing.assert_allclose(metrics["sensitivity"],
                               sklearn.metrics.recall_score(flat_truth, flat_pred, **kwargs))
    np.testing.assert_allclose(metrics["precision"],
                               sklearn.metrics.precision_score(flat_truth, flat_pred, **kwargs))
    matrix = sklearn.metrics.confusion_matrix(flat_truth, flat_pred, labels=[0, 1, 2])
    negatives = matrix.sum() - matrix.sum(axis=1)
    true_negatives = negatives - (matrix.sum(axis=0) - np.diag(matrix))
    np.testing.assert_allclose(metrics["specificity"], true_negatives / negatives)
    np.testing.assert_array_equal(overlap.multiclass_overlap(truth, labels)["dice"],
                                  metrics["dice"])


def test_multiclass_absent_class_follows_the_empty_policy():
    truth = np.zeros((4, 6), int)
    truth[1:3, 1:3] = 1
    pred = truth.copy()
    assert np.isnan(overlap.multiclass_overlap(truth, pred)["dice"][2])
    np.testing.assert_array_equal(overlap.multiclass_overlap(truth, pred, empty="one")["dice"],
                                  [1.0, 1.0, 1.0])


def test_misuse_raises_value_errors_echoing_the_values():
    with pytest.raises(ValueError, match=r"truth.shape=\(4, 5\), pred.shape=\(5, 4\)"):
        overlap.confusion_counts(np.zeros((4, 5)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match=r"Received: empty='ignore'"):
        overlap.binary_overlap(np.zeros((2, 2)), np.zeros((2, 2)), empty="ignore")
    with pytest.raises(ValueError, match=r"truth labels must lie in 0...2. Received: \[3\]"):
        overlap.multiclass_overlap(np.full((2, 2), 3), np.zeros((2, 2), int))
