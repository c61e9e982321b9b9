"""Test-set summaries against the NumPy formula, scikit-learn and py_sod_metrics aggregates."""

import numpy as np
import py_sod_metrics
import pytest
import sklearn.metrics
from py_sod_metrics.utils import prepare_data

from tests.metrics.references import (
    blob_mask,
    noisy_prediction,
    to_uint8,
    toolbox_fmeasure_calu,
    toolbox_s_measure,
)
from tfcovid.metrics import summary


def _error(values, ddof=0):
    values = np.asarray(values, float)
    return 1.96 * np.std(values, ddof=ddof) / np.sqrt(values.size)


def test_summarize_matches_the_reference_formula_and_counts_dropped_nans():
    values = [0.2, np.nan, 0.5, 0.9, np.nan, 0.4]
    kept = [0.2, 0.5, 0.9, 0.4]
    result = summary.summarize(values)
    assert result.mean == pytest.approx(np.mean(kept))
    assert result.error == pytest.approx(_error(kept))  # SSInfNet: 1.96 * np.std / sqrt(n)
    assert (result.n, result.dropped) == (4, 2)
    assert summary.summarize(values, ddof=1).error == pytest.approx(_error(kept, ddof=1))
    assert summary.summarize(values, z=1.0).error == pytest.approx(_error(kept) / 1.96)


def test_summarize_degenerate_inputs():
    single = summary.summarize([0.3])
    assert (single.mean, single.error, single.n) == (0.3, 0.0, 1)
    assert np.isnan(summary.summarize([0.3], ddof=1).error)
    nothing = summary.summarize([np.nan, np.nan])
    assert np.isnan(nothing.mean) and np.isnan(nothing.error) and nothing.dropped == 2
    with pytest.raises(ValueError, match=r"ddof=-1"):
        summary.summarize([0.1], ddof=-1)


def _binary_set(seed=0):
    """Five images of three sizes
    the last has an empty truth and an empty prediction."""
    rng = np.random.default_rng(seed)
    preds, truths = [], []
    for height, width in ((40, 56), (32, 48), (48, 36), (40, 56)):
        truth = blob_mask(rng, height, width)
        preds.append(noisy_prediction(rng, truth))
        truths.append(truth)
    preds.append(np.full((32, 40), 0.2))
    truths.append(np.zeros((32, 40), bool))
    return preds, truths


def test_evaluate_binary_per_image_matches_sklearn_and_py_sod_metrics():
    preds, truths = _binary_set()
    table = summary.evaluate_binary(preds, truths)
    assert list(table) == ["dice", "iou", "sensitivity", "specificity", "precision", "auc",
                           "s_measure", "e_measure", "weighted_f", "mae"]
    # the fifth image (empty truth and prediction) is undefined for Dice and AUC: left out
    dice = [sklearn.metrics.f1_score(t.ravel(), p.ravel() >= 0.5)
            for p, t in zip(preds[:4], truths[:4])]
    assert table["dice"].mean == pytest.approx(np.mean(dice))
    assert table["dice"].error == pytest.approx(_error(dice))
    assert (table["dice"].n, table["dice"].dropped) == (4, 1)
    auc = [sklearn.metrics.roc_auc_score(t.ravel(), p.ravel())
           for p, t in zip(preds[:4], truths[:4])]
    assert table["auc"].mean == pytest.approx(np.mean(auc)) and table["auc"].dropped == 1
    assert table["specificity"].n == 5  # defined on the empty image: 1280 / 1280
    mae = py_sod_metrics.MAE()
    for pred, truth in zip(preds, truths):
        mae.step(to_uint8(pred), truth.astype(np.uint8) * 255)
    # py_sod_metrics sees the 8-bit map; the rounding moves MAE by at most 1 / 510
    assert table["mae"].mean == pytest.approx(mae.get_results()["mae"], abs=1 / 510)
    assert table["weighted_f"].dropped == 1  # no weighted recall without foreground


def test_evaluate_binary_batches_pool_counts_and_pixels():
    preds, truths = _binary_set(seed=1)
    table = summary.evaluate_binary(preds, truths, batch_size=2)
    groups = [(0, 1), (2, 3), (4,)]
    dice, auc = [], []
    for group in groups:
        truth = np.concatenate([truths[i].ravel() for i in group])
        pred = np.concatenate([preds[i].ravel() for i in group])
        if truth.any() or (pred >= 0.5).any():
            dice.append(sklearn.metrics.f1_score(truth, pred >= 0.5))
        if truth.any():
            auc.append(sklearn.metrics.roc_auc_score(truth, pred))
    assert table["dice"].n == len(dice) == 2
    assert table["dice"].mean == pytest.approx(np.mean(dice))
    assert table["auc"].mean == pytest.approx(np.mean(auc))
    assert table["s_measure"].n == 5  # structure measures stay per image
    with pytest.raises(ValueError, match=r"batch_size=0"):
        summary.evaluate_binary(preds, truths, batch_size=0)


def test_evaluate_multiclass_per_class_and_class_averages():
    rng = np.random.default_rng(2)
    preds, truths = [], []
    for height, width in ((32, 48), (40, 36), (36, 52)):
        truth = rng.choice(3, size=(height, width), p=[0.7, 0.2, 0.1])
        preds.append(rng.random((height, width, 3)) + 0.7 * np.eye(3)[truth])
        truths.append(truth)
    table = summary.evaluate_multiclass(preds, truths)
    per_image = np.array([sklearn.metrics.f1_score(t.ravel(), p.argmax(-1).ravel(),
                                                   labels=[0, 1, 2], average=None)
                          for p, t in zip(preds, truths)])
    class_means = per_image.mean(axis=0)
    for index, name in enumerate(("background", "ground-glass opacity", "consolidation")):
        assert table[f"dice/{name}"].mean == pytest.approx(class_means[index])
        assert table[f"dice/{name}"].error == pytest.approx(_error(per_image[:, index]))
    assert table["dice/overall"].mean == pytest.approx(class_means.mean())
    assert table["dice/foreground"].mean == pytest.approx(class_means[1:].mean())
    assert np.isnan(table["dice/overall"].error) and table["dice/overall"].n == 3


def test_evaluate_multiclass_overall_is_the_mean_of_class_means_after_dropping():
    # image 1: perfect, no consolidation (its Dice undefined); image 2: consolidation missed
    truth_1 = np.array([[0, 1], [1, 0]])
    pred_1 = truth_1.copy()
    truth_2 = np.array([[0, 2], [0, 0]])
    pred_2 = np.zeros((2, 2), int)
    table = summary.evaluate_multiclass([pred_1, pred_2], [truth_1, truth_2])
    # background Dice: 1 and 2*3/(3+4) = 6/7; GGO: 1 (image 2 undefined); consolidation: 0
    assert table["dice/background"].mean == pytest.approx((1 + 6 / 7) / 2)
    assert table["dice/ground-glass opacity"] == (1.0, 0.0, 1, 1)
    assert table["dice/consolidation"] == (0.0, 0.0, 1, 1)
    assert table["dice/overall"].mean == pytest.approx(((1 + 6 / 7) / 2 + 1 + 0) / 3)
    assert table["dice/foreground"].mean == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"class_names=\('a', 'b'\)"):
        summary.evaluate_multiclass([pred_1], [truth_1], class_names=("a", "b"))


def test_threshold_sweep_matches_toolbox_aggregation_and_py_sod_metrics():
    rng = np.random.default_rng(3)
    preds, truths = [], []
    for height, width in ((40, 56), (32, 48), (44, 40)):
        truth = blob_mask(rng, height, width)
        preds.append(to_uint8(noisy_prediction(rng, truth)))
        truths.append(truth.astype(np.uint8) * 255)
    report = summary.evaluate_threshold_sweep(preds, truths, toolbox_compatible=True)
    # main.m: average each threshold's Dice over images, then mean / max over thresholds
    dice = np.array([[toolbox_fmeasure_calu(*prepare_data(p, t), k / 255)["dice"]
                      for k in range(255, -1, -1)] for p, t in zip(preds, truths)])
    assert report["mean_dice"] == pytest.approx(dice.mean(axis=0).mean(), abs=1e-12)
    assert report["max_dice"] == pytest.approx(dice.mean(axis=0).max(), abs=1e-12)
    e_measure, mae = py_sod_metrics.Emeasure(), py_sod_metrics.MAE()
    for pred, truth in zip(preds, truths):
        for metric in (e_measure, mae):
            metric.step(pred, truth)
    curve = e_measure.get_results()["em"]["curve"]
    assert report["mean_e_measure"] == pytest.approx(curve.mean(), abs=1e-12)
    assert report["max_e_measure"] == pytest.approx(curve.max(), abs=1e-12)
    assert report["mae"] == pytest.approx(mae.get_results()["mae"], abs=1e-12)
    s_values = [toolbox_s_measure(pred, truth) for pred, truth in zip(preds, truths)]
    assert report["s_measure"] == pytest.approx(np.mean(s_values), abs=1e-12)


def test_threshold_sweep_on_an_empty_truth_standard_and_toolbox_modes():
    pred = np.random.default_rng(4).random((30, 44))
    truth = np.zeros((30, 44), bool)
    toolbox = summary.evaluate_threshold_sweep([pred], [truth], toolbox_compatible=True)
    assert toolbox["mean_specificity"] == 0.0 and toolbox["mean_dice"] == 0.0  # TP = 0 always
    standard = summary.evaluate_threshold_sweep([pred], [truth])
    normalized = (pred - pred.min()) / (pred.max() - pred.min())
    specificity = [np.mean(normalized < k / 255) for k in range(255, -1, -1)]
    assert standard["mean_specificity"] == pytest.approx(np.mean(specificity))
    assert np.isnan(standard["mean_sensitivity"])  # undefined at every threshold, all dropped
    assert standard["mean_dice"] == 0.0  # defined: every threshold predicts some foreground


def test_threshold_sweep_leaves_undefined_thresholds_out_of_mean_and_max():
    truth = blob_mask(np.random.default_rng(5), 30, 44)
    constant = np.full((30, 44), 0.2)  # mapminmax leaves a constant map as it is
    report = summary.evaluate_threshold_sweep([constant], [truth])
    # precision: undefined (nothing predicted) for t > 0.2, |truth| / size for t <= 0.2
    assert report["mean_precision"] == pytest.approx(truth.mean())
    assert report["max_precision"] == pytest.approx(truth.mean())
    levels = np.arange(256) / 255
    assert report["mean_sensitivity"] == pytest.approx(np.mean(levels <= 0.2))  # 0 above


def test_format_table_aligns_names_and_prints_summaries_and_floats():
    text = summary.format_table({"dice": summary.Summary(0.75, 0.0512, 40, 8),
                                 "dice/overall": summary.Summary(0.5, float("nan"), 40, 0),
                                 "mae": 0.0821}, digits=2)
    assert text.splitlines() == ["dice          0.75 ± 0.05  n=40  dropped=8",
                                 "dice/overall  0.50 ± nan  n=40  dropped=0",
                                 "mae           0.08"]


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError, match=r"len\(preds\)=2, len\(truths\)=1"):
        summary.evaluate_binary([np.zeros((2, 2))] * 2, [np.zeros((2, 2))])
