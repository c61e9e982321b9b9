"""Toolbox measures against py_sod_metrics, scikit-learn and line-by-line toolbox references.

py_sod_metrics (package pysodmetrics) ports the same MATLAB code. It takes uint8 maps and grey
ground truths, divides by 255, min-max normalises and thresholds ``gt > 128``, as the toolbox;
its E-measure curve bins ``floor(pred * 255)``, which for every 8-bit map equals our
``pred >= k / 255`` at the same 256 thresholds, in the same descending order. One known
difference: its S-measure rounds the centroid with NumPy (half to even) where MATLAB rounds half
away from zero
the tests below rebuild the MATLAB rule from py_sod_metrics' own parts.
"""

import numpy as np
import py_sod_metrics
import pytest
import sklearn.metrics
from py_sod_metrics.utils import prepare_data

from tests.metrics.references import (
    blob_mask,
    noisy_prediction,
    to_uint8,
    toolbox_enhanced_measure,
    toolbox_s_measure,
    toolbox_fmeasure_calu,
)
from tfcovid.metrics import saliency


def _cases(count=6, seed=0):
    """(uint8 prediction, uint8 0/255 truth) pairs: blobs plus noise, and pure noise."""
    rng = np.random.default_rng(seed)
    cases = []
    for index in range(count):
        truth = blob_mask(rng)
        pred = noisy_prediction(rng, truth) if index % 2 else rng.random(truth.shape)
        cases.append((to_uint8(pred), truth.astype(np.uint8) * 255))
    return cases


def _sod(metric, pred, truth):
    metric.step(pred, truth)
    return metric


@pytest.mark.parametrize("pred, truth", _cases())
def test_s_measure_matches_py_sod_metrics_parts_with_matlab_rounding(pred, truth):
    assert saliency.s_measure(pred, truth) == pytest.approx(toolbox_s_measure(pred, truth),
                                                            abs=1e-12)
    row, col = np.argwhere(truth > 128).mean(axis=0)
    if np.round(row) == np.floor(row + 1.5) - 1 and np.round(col) == np.floor(col + 1.5) - 1:
        sod = _sod(py_sod_metrics.Smeasure(), pred, truth)
        assert saliency.s_measure(pred, truth) == pytest.approx(sod.sms[0], abs=1e-12)


def test_s_measure_centroid_rounds_half_away_from_zero_unlike_py_sod_metrics():
    # foreground in columns 1-2 (1-based): centroid column 1.5 -> MATLAB 2, NumPy's rule 1
    truth = np.zeros((8, 10), np.uint8)
    truth[2:6, 0:2] = 255
    pred = to_uint8(np.random.default_rng(3).random((8, 10)))
    ours = saliency.s_measure(pred, truth)
    assert ours == pytest.approx(toolbox_s_measure(pred, truth), abs=1e-12)
    sod = _sod(py_sod_metrics.Smeasure(), pred, truth).sms[0]
    assert abs(ours - sod) > 1e-3  # the known difference, only at half-pixel centroids


def test_s_measure_with_the_centroid_on_the_last_column_is_finite():
    truth = np.zeros((8, 10), np.uint8)
    truth[2:6, 9] = 255  # centroid column 10 of 10
    pred = to_uint8(np.random.default_rng(4).random((8, 10)))
    ours = saliency.s_measure(pred, truth)
    assert np.isfinite(ours) and ours == pytest.approx(toolbox_s_measure(pred, truth), abs=1e-12)


def test_s_measure_degenerate_truths_and_perfect_maps():
    pred = np.random.default_rng(1).random((6, 9))
    normalized = (pred - pred.min()) / (pred.max() - pred.min())
    assert saliency.s_measure(pred, np.zeros((6, 9))) == pytest.approx(1 - normalized.mean())
    assert saliency.s_measure(pred, np.ones((6, 9))) == pytest.approx(normalized.mean())
    truth = blob_mask(np.random.default_rng(2))
    assert saliency.s_measure(truth.astype(float), truth) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("pred, truth", _cases() + [  # mean above 0.5: adaptive t capped at 1
    (255 - _cases(1)[0][0] // 4, _cases(1)[0][1])])
def test_e_measure_curve_matches_py_sod_metrics(pred, truth):
    sod = _sod(py_sod_metrics.Emeasure(), pred, truth)
    curve = saliency.threshold_curves(pred, truth)["e_measure"]
    np.testing.assert_allclose(curve, sod.changeable_ems[0], rtol=0, atol=1e-12)
    assert saliency.e_measure(pred, truth) == pytest.approx(np.mean(sod.changeable_ems[0]))
    assert saliency.e_measure(pred, truth, "adaptive") == pytest.approx(sod.adaptive_ems[0],
                                                                        abs=1e-12)


@pytest.mark.parametrize("threshold", [0.0, 0.3, 100 / 255, 0.5, 1.0])
def test_e_measure_at_a_threshold_matches_the_pixelwise_toolbox_formula(threshold):
    pred, truth = _cases(2, seed=5)[1]
    normalized, binary_truth = prepare_data(pred, truth)
    expected = toolbox_enhanced_measure(normalized >= threshold, binary_truth)
    assert saliency.e_measure(pred, truth, threshold) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("truth_value", [0, 255])
def test_e_measure_on_degenerate_truths(truth_value):
    rng = np.random.default_rng(4)
    pred = to_uint8(rng.random((40, 56)))
    truth = np.full((40, 56), truth_value, np.uint8)
    sod = _sod(py_sod_metrics.Emeasure(), pred, truth)
    np.testing.assert_allclose(saliency.threshold_curves(pred, truth)["e_measure"],
                               sod.changeable_ems[0], atol=1e-12)
    # a perfect map scores sum(1) / (H W - 1): just above 1, as the toolbox
    perfect = saliency.e_measure(truth / 255.0, truth, threshold=0.5, normalize=False)
    assert perfect == pytest.approx(40 * 56 / (40 * 56 - 1))


@pytest.mark.parametrize("pred, truth", _cases() + [
    (to_uint8(np.eye(40, 56)), np.eye(40, 56, dtype=np.uint8) * 255)])
def test_weighted_f_and_mae_match_py_sod_metrics(pred, truth):
    wfm = _sod(py_sod_metrics.WeightedFmeasure(), pred, truth).weighted_fms[0]
    assert saliency.weighted_f_measure(pred, truth) == pytest.approx(wfm, abs=1e-12)
    sod_mae = _sod(py_sod_metrics.MAE(), pred, truth).maes[0]
    normalized, binary_truth = prepare_data(pred, truth)
    assert saliency.mae(pred, truth) == pytest.approx(sod_mae, abs=1e-15)
    assert saliency.mae(pred, truth) == pytest.approx(np.abs(normalized - binary_truth).mean())


def test_weighted_f_edge_cases():
    truth = blob_mask(np.random.default_rng(6))
    # perfect map: no error, weighted recall 1 and precision 1 -> 2 / (2 + eps)
    assert saliency.weighted_f_measure(truth.astype(float), truth) == pytest.approx(1.0)
    assert np.isnan(saliency.weighted_f_measure(np.random.default_rng(0).random((5, 7)),
                                                np.zeros((5, 7))))


def test_normalize_prediction_matches_im2double_mapminmax():
    rng = np.random.default_rng(8)
    pred = rng.integers(20, 200, (9, 11)).astype(np.uint8)
    expected, _ = prepare_data(pred, np.zeros((9, 11), np.uint8))
    np.testing.assert_allclose(saliency.normalize_prediction(pred), expected, atol=1e-15)
    constant = np.full((3, 4), 51, np.uint8)  # left as it is: 51 / 255 = 0.2
    np.testing.assert_allclose(saliency.normalize_prediction(constant), 0.2)
    floats = np.array([[0.2, 0.4], [0.6, 0.3]])
    np.testing.assert_allclose(saliency.normalize_prediction(floats), [[0, 0.5], [1, 0.25]])


def test_thresholds_are_the_toolbox_descending_levels():
    assert saliency.THRESHOLDS.shape == (256,)
    assert saliency.THRESHOLDS[0] == 1.0 and saliency.THRESHOLDS[-1] == 0.0
    assert np.all(np.diff(saliency.THRESHOLDS) < 0)
    assert saliency.THRESHOLDS[1] == 254 / 255


@pytest.mark.parametrize("pred, truth", _cases(4, seed=9) + [
    (to_uint8(np.random.default_rng(1).random((40, 56))), np.zeros((40, 56), np.uint8))])
def test_toolbox_compatible_sweep_matches_fmeasure_calu_line_by_line(pred, truth):
    curves = saliency.threshold_curves(pred, truth, toolbox_compatible=True)
    normalized, binary_truth = prepare_data(pred, truth)
    expected = [toolbox_fmeasure_calu(normalized, binary_truth, k / 255)
                for k in range(255, -1, -1)]
    for name in ("dice", "sensitivity", "specificity", "precision"):
        np.testing.assert_allclose(curves[name], [row[name] for row in expected], atol=1e-12,
                                   err_msg=name)


def test_standard_sweep_matches_sklearn_and_differs_from_the_toolbox_only_where_tp_is_0():
    pred, truth = _cases(2, seed=11)[1]
    pred = np.minimum(pred, 250)
    pred[np.nonzero(truth == 0)[0][0], np.nonzero(truth == 0)[1][0]] = 255  # brightest is FP
    normalized, binary_truth = prepare_data(pred, truth)
    standard = saliency.threshold_curves(pred, truth)
    toolbox = saliency.threshold_curves(pred, truth, toolbox_compatible=True)
    for index in (0, 40, 128, 200, 255):
        mask = normalized >= saliency.THRESHOLDS[index]
        matrix = sklearn.metrics.confusion_matrix(binary_truth.ravel(), mask.ravel(),
                                                  labels=[0, 1])
        (tn, fp), (fn, tp) = matrix
        assert standard["specificity"][index] == pytest.approx(tn / (tn + fp))
        assert standard["dice"][index] == pytest.approx(
            sklearn.metrics.f1_score(binary_truth.ravel(), mask.ravel(), zero_division=0.0))
        assert standard["sensitivity"][index] == pytest.approx(tp / (tp + fn))
    tp_zero = np.array([not np.any((normalized >= t) & binary_truth)
                        for t in saliency.THRESHOLDS])
    assert tp_zero[:5].all() and not tp_zero[5:].any()  # t = 1 ... 251/255: only the FP
    np.testing.assert_array_equal(toolbox["specificity"][~tp_zero],
                                  standard["specificity"][~tp_zero])
    assert np.all(toolbox["specificity"][tp_zero] == 0)
    assert np.all(standard["specificity"][tp_zero] > 0.9)


@pytest.mark.parametrize("seed", range(3))
def test_roc_auc_matches_sklearn_with_and_without_ties(seed):
    rng = np.random.default_rng(seed)
    truth = blob_mask(rng)
    pred = noisy_prediction(rng, truth)
    expected = sklearn.metrics.roc_auc_score(truth.ravel(), pred.ravel())
    assert saliency.roc_auc(pred, truth) == pytest.approx(expected, abs=1e-12)
    quantized = np.round(pred, 1)  # heavy ties
    expected = sklearn.metrics.roc_auc_score(truth.ravel(), quantized.ravel())
    assert saliency.roc_auc(quantized, truth) == pytest.approx(expected, abs=1e-12)


def test_roc_auc_is_nan_for_a_single_class_truth():
    pred = np.random.default_rng(0).random((5, 6))
    assert np.isnan(saliency.roc_auc(pred, np.zeros((5, 6))))
    assert np.isnan(saliency.roc_auc(pred, np.ones((5, 6), bool)))


def test_trailing_channel_is_squeezed_and_misuse_raises():
    pred, truth = _cases(1)[0]
    assert saliency.mae(pred[..., None], truth[..., None]) == saliency.mae(pred, truth)
    with pytest.raises(ValueError, match=r"pred.shape=\(40, 56\), truth.shape=\(56, 40\)"):
        saliency.s_measure(pred, truth.T)
    with pytest.raises(ValueError, match=r"min=-0.5, max=1.0"):
        saliency.mae(np.array([[-0.5, 1.0]]), np.array([[0, 1]]), normalize=False)
    with pytest.raises(ValueError, match=r"threshold='max'"):
        saliency.e_measure(pred, truth, threshold="max")
    with pytest.raises(ValueError, match=r"pred.dtype=int16"):
        saliency.normalize_prediction(np.zeros((2, 2), np.int16))
